"""Plain DuckDB baseline: the refresh's core work in one process, for ``refresh_bench.py``.

    .venv/bin/python benchmarks/plain_refresh.py [--sources DIR] --out FILE

What it does, over every file in ``<sources>/<provider>/inbox/`` (one connection, DuckDB only):

1. Reads each dataset's files (``file_pattern``; a ``load: replace`` dataset only its latest
   file) with one ``read_csv`` (``read_text`` and JSON functions for GeoJSON) per dataset, every
   contract column read as text by its header so a beat ``0101`` stays ``0101``.
2. Validates: the contract's value maps and date formats, ``TRY_CAST`` to the contract type (a
   value that does not cast rejects its row), required columns non-null, ``allowed`` values,
   ``min``/``max``, ``checks``; a key repeated within one file rejects its rows; a file with
   more bad rows than ``max_bad_row_share`` is rejected whole. Derived columns are computed,
   identifiers dropped, and the latest file's row of a key kept (``raw.<provider>__<dataset>``).
3. Aggregates every measure (count, sum, median, entities, distinct; ``where``, ``having``,
   breakdowns mapped to the policy's values and age bands) into cells (beat, district, city) x
   (month, quarter, year; entities at ``entity_period_level`` only) x (total and each breakdown)
   with one ``GROUPING SETS`` pass, zero-filled over a spine of the dataset's months. Rows are
   placed on a beat by their beat column, a crosswalk join (tract or school -> beat) or, for
   coordinates, a point-in-polygon join against the beat map's edges (ray casting in SQL).
4. Primary suppression per audience: a count 0 < n < k (the policy's ``min_cell_size`` for the
   provider and audience) keeps no count; cells outside the audience's table design are left out.
5. Metric values of the catalog per audience: counts and medians, rates per 1,000 residents
   (the city's population of that year, or the latest earlier one) and percents, with the
   statuses published, unreliable, suppressed and missing (the dbt model's rules).

What it does not do, so the ratio against ``cs360 refresh`` reads fairly: no complementary
suppression, no sparse-level rule (``max_small_share``), no release history or privacy audit,
no zones, no month-completeness or look-back (``history_months``) gating, no catalog, scorecard,
expectations, exports, briefs or publication, no ledger, archive, quarantine files, revisions by
month (a later file's row of the same key wins instead), time-zone conversion of offsets, Excel
or Parquet readers, and no orchestration. Everything lands in one file (``--out``), the row-level
tables too (schema ``raw``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from cs360_pipeline.catalog.metrics import SCALE, load_catalog  # noqa: E402
from cs360_pipeline.privacy.policy import Breakdown, Policy, load_policy  # noqa: E402
from cs360_pipeline.registry import Dataset, Measure, Provider, load_registry  # noqa: E402
from cs360_pipeline.settings import SHIPPED_METRICS, SHIPPED_POLICY, current_paths  # noqa: E402

AGE_MACRO = """
CREATE OR REPLACE TEMP MACRO age_years(birth, at_time) AS (
    date_diff('year', birth, CAST(at_time AS DATE))
    - CASE WHEN strftime(CAST(at_time AS DATE), '%m%d') < strftime(birth, '%m%d') THEN 1 ELSE 0 END
)
"""
PERIODS = {"month": "_month", "quarter": "_quarter", "year": "_year"}
GEOS = {"beat": "_beat", "district": "_district", "city": "_city"}
ISO = {"DATE": "%Y-%m-%d", "TIMESTAMP": "%Y-%m-%d %H:%M:%S"}  # what TRY_CAST reads
CELL_KEY = "period_level, period_start, geo_level, geo_code, breakdown"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# -- ingest and validation --------------------------------------------------------------------


def text_source(dataset: Dataset, files: list[Path]) -> str:
    """A query of one dataset's files: ``_file`` and every contract column as text, by name.

    CSV files are read with their header's columns declared (no type sniffing, which costs more
    than the read): files sharing a header in one ``read_csv``, the groups stacked by name.
    """
    if dataset.format == "geojson":
        paths = "[" + ", ".join(lit(f) for f in files) + "]"
        features = "from_json(CAST(content AS JSON)->'features', '[\"JSON\"]')"
        props = "".join(
            f", _f->>{lit('$.properties.' + (c.source or n))} AS {q(n)}"
            for n, c in dataset.columns.items()
        )
        features = f"SELECT filename AS _file, unnest({features}) AS _f FROM read_text({paths})"
        return (
            f"SELECT _file{props}, CAST(_f->'$.geometry' AS VARCHAR) AS geometry FROM ({features})"
        )
    if dataset.format not in ("csv", "tsv") or dataset.encoding not in ("utf-8", "utf-8-sig"):
        raise SystemExit(f"{dataset.format} files in {dataset.encoding} are not read here")
    groups: dict[tuple[str, ...], list[Path]] = {}
    for path in files:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter=dataset.field_delimiter), [])
        groups.setdefault(tuple(header), []).append(path)
    parts = []
    for header, group in groups.items():
        declared = "{" + ", ".join(f"{lit(h)}: 'VARCHAR'" for h in header) + "}"
        columns = "".join(
            f", {q(c.source or n) if (c.source or n) in header else 'NULL'} AS {q(n)}"
            for n, c in dataset.columns.items()
        )
        parts.append(
            f"SELECT _file{columns} FROM read_csv([{', '.join(lit(f) for f in group)}], "
            f"header = true, auto_detect = false, columns = {declared}, filename = '_file', "
            f"delim = {lit(dataset.field_delimiter)}, quote = '\"', escape = '\"')"
        )
    return " UNION ALL BY NAME ".join(parts)


def typed(name: str, text: str, dataset: Dataset) -> str:
    """SQL turning a column's text into its contract type; NULL when it does not parse."""
    col = dataset.columns[name]
    if col.values:
        cases = " ".join(
            f"WHEN {lit(k)} THEN {lit(col.canonical_text(v))}" for k, v in col.values.items()
        )
        text = f"(CASE {text} {cases} ELSE {text} END)"
    default = dataset.timestamp_format if col.type == "TIMESTAMP" else dataset.date_format
    formats = col.formats or [default]
    if col.type in ("DATE", "TIMESTAMP") and formats != [ISO[col.type]]:
        parsed = ", ".join(f"try_strptime({text}, {lit(f)})" for f in formats)
        return f"CAST(coalesce({parsed}) AS {col.type})"
    return text if col.type == "VARCHAR" else f"TRY_CAST({text} AS {col.type})"


def bad_rows(dataset: Dataset, texts: dict[str, str]) -> list[str]:
    """Conditions over a staged row that break the contract (one is enough to reject it)."""
    bad = []
    for name, col in dataset.columns.items():
        c = q(name)
        if col.type != "VARCHAR":
            bad.append(f"({texts[name]} IS NOT NULL AND {c} IS NULL)")
        if col.required:
            bad.append(f"{c} IS NULL")
        if col.allowed is not None:
            bad.append(f"{c} NOT IN ({', '.join(map(lit, col.allowed))})")
        for bound, op in ((col.min, "<"), (col.max, ">")):
            if bound is None:
                continue
            if col.type in ("DATE", "TIMESTAMP"):
                ref = "current_date" if bound == "today" else f"DATE {lit(bound)}"
                bad.append(f"CAST({c} AS DATE) {op} {ref}")
            else:
                bad.append(f"{c} {op} {float(bound)!r}")
    bad += [f"NOT coalesce(({check}), false)" for check in dataset.checks.values()]
    return bad


def ingest(
    con: duckdb.DuckDBPyConnection, provider: Provider, name: str, inbox: Path
) -> tuple[int, int]:
    """Load one dataset into ``raw.<provider>__<dataset>``; (rows read, rows rejected)."""
    dataset = provider.datasets[name]
    files = sorted(inbox.glob(dataset.file_pattern))
    if dataset.load == "replace":
        files = files[-1:]
    if not files:
        return 0, 0
    source = text_source(dataset, files)
    columns = ", ".join(f"{typed(n, q(n), dataset)} AS {q(n)}" for n in dataset.columns)
    checked = [n for n, c in dataset.columns.items() if c.type != "VARCHAR"]
    raw_texts = "".join(f", {q(n)} AS {q('_in_' + n)}" for n in checked)
    geometry = ", geometry" if dataset.format == "geojson" else ""
    derived = "".join(f", ({e}) AS {q(n)}" for n, e in dataset.derived.items())
    flags = " OR ".join(
        f"coalesce({b}, false)" for b in bad_rows(dataset, {n: q("_in_" + n) for n in checked})
    )
    keys = ", ".join(q(k) for k in dataset.key)
    repeated = f" OR count(*) OVER (PARTITION BY {keys}, _file) > 1" if keys else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _staged AS
        SELECT * EXCLUDE (_row_bad), _row_bad{repeated} AS _bad FROM (
            SELECT *, {flags} AS _row_bad FROM (
                SELECT *{derived} FROM (
                    SELECT _file{geometry}, {columns}{raw_texts} FROM ({source}))
            )
        )
    """)
    con.execute(f"""
        UPDATE _staged SET _bad = true WHERE _file IN (
            SELECT _file FROM _staged GROUP BY _file
            HAVING avg(CAST(_bad AS INTEGER)) > {dataset.max_bad_row_share})
    """)
    read, rejected = con.execute("SELECT count(*), count(*) FILTER (_bad) FROM _staged").fetchone()
    dropped = [q(n) for n, c in dataset.columns.items() if c.identifier]
    dropped += [q("_in_" + n) for n in checked]
    latest = (
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _file DESC) = 1" if keys else ""
    )
    con.execute(f"""
        CREATE OR REPLACE TABLE raw.{q(provider.table(name))} AS
        SELECT * EXCLUDE (_bad, {", ".join(dropped)}) FROM _staged WHERE NOT _bad {latest}
    """)
    con.execute("DROP TABLE _staged")
    return read, rejected


# -- placement on beats -------------------------------------------------------------------------


def beat_edges(con: duckdb.DuckDBPyConnection) -> None:
    """Every edge of every beat polygon, for ray casting: a point is inside when odd."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _edges AS
        WITH shapes AS (
            SELECT beat, CASE WHEN geometry->>'$.type' = 'Polygon'
                    THEN [CAST(geometry->'$.coordinates' AS DOUBLE[][][])]
                    ELSE CAST(geometry->'$.coordinates' AS DOUBLE[][][][]) END AS polygons
            FROM raw.city__beat_boundaries),
        rings AS (SELECT beat, unnest(flatten(polygons)) AS ring FROM shapes),
        edges AS (SELECT beat, ring, unnest(range(1, len(ring))) AS i FROM rings)
        SELECT beat, ring[i][1] AS x1, ring[i][2] AS y1, ring[i + 1][1] AS x2,
               ring[i + 1][2] AS y2, least(y1, y2) AS ymin, greatest(y1, y2) AS ymax
        FROM edges WHERE ring[i][2] <> ring[i + 1][2]
    """)


def beat_source(
    con: duckdb.DuckDBPyConnection, provider: Provider, dataset_name: str
) -> tuple[str, str]:
    """(key over the raw row, SQL giving _geo_key -> _beat) for a dataset's geography."""
    geo = provider.datasets[dataset_name].geography
    assert geo is not None
    if geo.points is not None:
        beat_edges(con)
        lon, lat = q(geo.points.longitude), q(geo.points.latitude)
        table = q(provider.table(dataset_name))
        return "rowid", f"""
            SELECT p.rowid AS _geo_key, e.beat AS _beat
            FROM raw.{table} AS p JOIN _edges AS e ON p.{lat} >= e.ymin AND p.{lat} < e.ymax
            WHERE p.{lon} < e.x1 + (p.{lat} - e.y1) * (e.x2 - e.x1) / (e.y2 - e.y1)
            GROUP BY p.rowid, e.beat HAVING count(*) % 2 = 1"""  # fmt: skip
    if geo.crosswalk is None:
        return q(geo.column or ""), "SELECT beat AS _geo_key, beat AS _beat FROM raw.city__beats"
    table = q(geo.crosswalk.dataset.replace(".", "__"))
    crosswalk = f"SELECT {q(geo.crosswalk.key)} AS _geo_key, beat AS _beat FROM raw.{table}"
    return q(geo.column or ""), crosswalk


# -- cells ------------------------------------------------------------------------------------


def breakdown_sql(expression: str, breakdown: Breakdown) -> str:
    """A breakdown's value: one of the policy's values or age bands, else its ``other``."""
    if breakdown.bands:
        cases = " ".join(
            f"WHEN ({expression}) >= {low}"
            + (f" AND ({expression}) <= {high}" if high is not None else "")
            + f" THEN {lit(label)}"
            for label, low, high in breakdown.bounds()
        )
        return f"CASE {cases} ELSE {lit(breakdown.other)} END"
    text = f"CAST(({expression}) AS VARCHAR)"
    values = ", ".join(map(lit, breakdown.values or []))
    return f"CASE WHEN {text} IN ({values}) THEN {text} ELSE {lit(breakdown.other)} END"


def level(columns: dict[str, str], label: bool) -> str:
    """The level (or code) of a grouping-set row, from which of the columns it groups by."""
    names = list(columns)
    pick = (lambda n: lit(n)) if label else (lambda n: columns[n])
    cases = " ".join(f"WHEN GROUPING({columns[n]}) = 0 THEN {pick(n)}" for n in names[:-1])
    return f"CASE {cases} ELSE {pick(names[-1])} END" if cases else pick(names[0])


def true_cells(
    con: duckdb.DuckDBPyConnection, provider: Provider, name: str, policy: Policy
) -> None:
    """One measure's cells with their true counts, into the temp table ``_true``."""
    measure: Measure = provider.measures[name]
    dataset = provider.datasets[measure.dataset]
    period = q(measure.period or dataset.period or "")
    table = q(provider.table(measure.dataset))
    city = policy.tables.city.code
    bds = list(measure.breakdowns)
    extras = [
        f"{breakdown_sql(e, policy.tables.breakdowns[b])} AS {q('_bd_' + b)}"
        for b, e in measure.breakdowns.items()
    ]
    extras += [f"({measure.value}) AS _value"] if measure.value else []
    extras += [f"({measure.entity}) AS _entity"] if measure.entity else []
    key, beats = beat_source(con, provider, measure.dataset)
    where = f"WHERE ({measure.where})" if measure.where else ""
    located = f"""
        SELECT r.*, CAST(date_trunc('month', _period) AS DATE) AS _month,
               CAST(date_trunc('quarter', _period) AS DATE) AS _quarter,
               CAST(date_trunc('year', _period) AS DATE) AS _year,
               g.beat AS _beat, g.district AS _district, {lit(city)} AS _city
        FROM (SELECT *, {period} AS _period, {key} AS _geo_key, rowid AS _rowid
                     {"".join(", " + e for e in extras)} FROM raw.{table} {where}) AS r
        JOIN ({beats}) AS x USING (_geo_key) JOIN raw.city__beats AS g ON g.beat = x._beat"""
    periods = dict(PERIODS)
    stat = "count(*) AS n, CAST(n AS DOUBLE) AS value"
    if measure.kind == "entities":
        lvl = policy.tables.entity_period_level
        periods = {lvl: PERIODS[lvl]}
        latest = ", ".join(
            f"arg_max({c}, _period) AS {c}"
            for c in ["_beat", "_district", *(q("_bd_" + b) for b in bds)]
        )
        having = f"({measure.having})" if measure.having else "true"
        located = f"""SELECT {PERIODS[lvl]}, {latest}, any_value(_city) AS _city, {having} AS hit
                      FROM ({located}) GROUP BY _entity, {PERIODS[lvl]}"""
        stat = "count(*) FILTER (WHERE hit) AS n, CAST(n AS DOUBLE) AS value"
    elif measure.kind == "distinct":
        located = f"""SELECT * FROM ({located}) QUALIFY _entity IS NULL
            OR row_number() OVER (PARTITION BY _entity ORDER BY _period, _rowid) = 1"""
    elif measure.kind == "median":
        stat = "count(_value) AS n, median(_value) AS value"
    elif measure.kind == "sum":
        stat = "CAST(sum(_value) AS BIGINT) AS n, CAST(n AS DOUBLE) AS value"
    sets = [
        "(" + ", ".join([p, g, *([q("_bd_" + b)] if b else [])]) + ")"
        for p in periods.values() for g in GEOS.values() for b in [None, *bds]
    ]  # fmt: skip
    bd_cases = " ".join(
        f"WHEN GROUPING({q('_bd_' + b)}) = 0 THEN {lit(b + '=')} || {q('_bd_' + b)}" for b in bds
    )
    spine_bds = " UNION ALL ".join(
        ["SELECT 'total' AS breakdown"]
        + [f"SELECT {lit(f'{b}={v}')}" for b in bds for v in policy.tables.breakdowns[b].domain]
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _true AS
        WITH agg AS (
            SELECT {level(periods, True)} AS period_level, {level(periods, False)} AS period_start,
                   {level(GEOS, True)} AS geo_level, {level(GEOS, False)} AS geo_code,
                   {f"CASE {bd_cases} ELSE 'total' END" if bds else "'total'"} AS breakdown, {stat}
            FROM ({located}) GROUP BY GROUPING SETS ({", ".join(sets)})),
        months AS (SELECT DISTINCT CAST(date_trunc('month', {period}) AS DATE) AS m
                   FROM raw.{table} WHERE {period} IS NOT NULL),
        spine AS (
            SELECT * FROM (SELECT 'month' AS period_level, m AS period_start FROM months
                UNION SELECT 'quarter', CAST(date_trunc('quarter', m) AS DATE) FROM months
                UNION SELECT 'year', CAST(date_trunc('year', m) AS DATE) FROM months) AS p,
            (SELECT 'beat' AS geo_level, beat AS geo_code FROM raw.city__beats
                UNION SELECT DISTINCT 'district', district FROM raw.city__beats
                UNION SELECT 'city', {lit(city)}) AS g,
            ({spine_bds}) AS b
            WHERE p.period_level IN ({", ".join(map(lit, periods))}))
        SELECT {lit(provider.measure_id(name))} AS measure_id, {lit(provider.provider)} AS provider,
               {CELL_KEY}, coalesce(a.n, 0) AS n,
               coalesce(a.value, {"NULL" if measure.kind == "median" else "0"}) AS value
        FROM spine LEFT JOIN agg AS a USING ({CELL_KEY})
    """)


def suppress(con: duckdb.DuckDBPyConnection, provider: str, policy: Policy) -> None:
    """Primary suppression of ``_true`` into ``cells``, per audience and its table design."""
    for audience, spec in policy.audiences.items():
        k = policy.rule(provider, audience).min_cell_size
        con.execute(f"""
            INSERT INTO cells
            SELECT {lit(audience)}, measure_id, provider, {CELL_KEY},
                   CASE WHEN n > 0 AND n < {k} THEN NULL ELSE n END,
                   CASE WHEN n > 0 AND n < {k} THEN NULL ELSE value END,
                   n > 0 AND n < {k}, {k}
            FROM _true WHERE {spec.shows_sql()}
        """)


# -- metric values ----------------------------------------------------------------------------


def metric_rules(
    con: duckdb.DuckDBPyConnection, providers: dict[str, Provider], policy: Policy
) -> None:
    """One row per metric and audience: its measures, unit and the resolved privacy rule."""
    catalog = load_catalog(providers, SHIPPED_METRICS)
    rows = []
    for metric_id, m in catalog.metrics.items():
        for audience in m.audiences:
            refs = [r for r in (m.numerator, m.denominator) if r and r != "population"]
            rule = policy.rule(refs[0].split(".")[0], audience, (metric_id,))
            for ref in refs[1:]:
                rule = rule.strictest(policy.rule(ref.split(".")[0], audience, (metric_id,)))
            den = refs[1].replace(".", "__") if len(refs) > 1 else None
            per_population = m.denominator == "population"
            measures = (m.unit, SCALE[m.unit], refs[0].replace(".", "__"), den, per_population)
            limits = (rule.min_cell_size, rule.flag_unreliable_below, rule.min_denominator)
            rows.append((metric_id, audience, *measures, *limits))
    con.execute("""CREATE TABLE metric_rules (metric_id VARCHAR, audience VARCHAR, unit VARCHAR,
        scale INTEGER, numerator VARCHAR, denominator VARCHAR, per_population BOOLEAN,
        k INTEGER, flag_unreliable_below INTEGER, min_denominator INTEGER)""")
    con.executemany("INSERT INTO metric_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def metric_values(con: duckdb.DuckDBPyConnection, city: str) -> None:
    """Every metric's cells per audience, with the dbt model's statuses and values."""
    con.execute(f"""
        CREATE TABLE population AS
        SELECT year,
               CASE WHEN GROUPING(p.beat) = 0 THEN 'beat'
                    WHEN GROUPING(b.district) = 0 THEN 'district' ELSE 'city' END AS geo_level,
               CASE WHEN GROUPING(p.beat) = 0 THEN p.beat
                    WHEN GROUPING(b.district) = 0 THEN b.district ELSE {lit(city)} END AS geo_code,
               CASE WHEN GROUPING(sex) = 0 THEN 'sex=' || sex
                    WHEN GROUPING(age_group) = 0 THEN 'age_group=' || age_group ELSE 'total' END
                   AS breakdown, CAST(sum(population) AS BIGINT) AS population
        FROM raw.city__population AS p JOIN raw.city__beats AS b USING (beat)
        GROUP BY GROUPING SETS ((year, p.beat), (year, b.district), (year),
            (year, p.beat, sex), (year, b.district, sex), (year, sex),
            (year, p.beat, age_group), (year, b.district, age_group), (year, age_group))
    """)
    con.execute(f"""
        CREATE TABLE metric_values AS
        WITH joined AS (
            SELECT r.*, num.{CELL_KEY.replace(", ", ", num.")},
                   num.n AS num_n, num.value AS num_value, num.suppressed AS num_suppressed,
                   coalesce(den.suppressed, false) AS den_suppressed,
                   CASE WHEN r.per_population THEN pop.population ELSE den.n END AS den_value,
                   r.per_population OR r.denominator IS NOT NULL AS needs_den
            FROM metric_rules AS r
            JOIN cells AS num ON num.measure_id = r.numerator AND num.audience = r.audience
            LEFT JOIN cells AS den ON den.measure_id = r.denominator AND den.audience = r.audience
                AND den.period_level = num.period_level AND den.period_start = num.period_start
                AND den.geo_level = num.geo_level AND den.geo_code = num.geo_code
                AND den.breakdown = num.breakdown
            ASOF LEFT JOIN population AS pop ON pop.geo_level = num.geo_level
                AND pop.geo_code = num.geo_code AND pop.breakdown = num.breakdown
                AND year(num.period_start) >= pop.year),
        statused AS (
            SELECT *, CASE
                WHEN unit = 'rate_per_1000' AND den_value IS NULL THEN 'missing'
                WHEN num_suppressed OR den_suppressed THEN 'suppressed'
                WHEN unit = 'minutes' AND num_n < k THEN 'suppressed'
                WHEN needs_den AND coalesce(den_value, 0) = 0 THEN 'missing'
                WHEN needs_den AND den_value < min_denominator THEN 'suppressed'
                WHEN needs_den AND num_n < flag_unreliable_below THEN 'unreliable'
                ELSE 'published' END AS status
            FROM joined)
        SELECT audience, metric_id, {CELL_KEY},
               CASE WHEN status IN ('suppressed', 'missing') THEN NULL
                    WHEN needs_den THEN round(num_value * scale / den_value, 3)
                    ELSE round(num_value, 3) END AS value,
               CASE WHEN status <> 'suppressed' THEN num_n END AS numerator,
               CASE WHEN status <> 'suppressed' THEN den_value END AS denominator, status
        FROM statused
    """)


# -- the run ----------------------------------------------------------------------------------


def run(sources: Path, out: Path) -> dict[str, int]:
    """The whole baseline into ``out``; the counts it prints."""
    registry = load_registry(sources)
    providers = registry.providers
    policy = load_policy(SHIPPED_POLICY)
    out.unlink(missing_ok=True)
    con = duckdb.connect(str(out))
    con.execute("CREATE SCHEMA raw")
    con.execute(AGE_MACRO)
    read = rejected = 0
    for provider in providers.values():
        for name in provider.datasets:
            r, x = ingest(con, provider, name, sources / provider.provider / "inbox")
            read, rejected = read + r, rejected + x
    tables = "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw'"
    loaded = {t for (t,) in con.execute(tables).fetchall()}
    con.execute("""CREATE TABLE cells (audience VARCHAR, measure_id VARCHAR, provider VARCHAR,
        period_level VARCHAR, period_start DATE, geo_level VARCHAR, geo_code VARCHAR,
        breakdown VARCHAR, n BIGINT, value DOUBLE, suppressed BOOLEAN, min_cell_size INTEGER)""")
    for provider in providers.values():
        for name, measure in provider.measures.items():
            geo = provider.datasets[measure.dataset].geography
            needs = {provider.table(measure.dataset), "city__beats"}
            needs |= {geo.crosswalk.dataset.replace(".", "__")} if geo and geo.crosswalk else set()
            needs |= {"city__beat_boundaries"} if geo and geo.points else set()
            if needs <= loaded:
                true_cells(con, provider, name, policy)
                suppress(con, provider.provider, policy)
    con.execute("DROP TABLE IF EXISTS _true")
    metric_rules(con, providers, policy)
    metric_values(con, policy.tables.city.code)
    counted = "SELECT count(*), count(*) FILTER (suppressed) FROM cells"
    cells, hidden = con.execute(counted).fetchone()
    values = con.execute("SELECT count(*) FROM metric_values").fetchone()[0]
    con.close()
    return {"rows read": read, "rows rejected": rejected, "cells": cells,
            "cells suppressed": hidden, "metric values": values}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, help="sources folder (default: the deployment's)")
    parser.add_argument("--out", type=Path, required=True, help="DuckDB file to write (replaced)")
    args = parser.parse_args()
    started = time.perf_counter()
    counts = run((args.sources or current_paths().sources_dir).resolve(), args.out)
    seconds = time.perf_counter() - started
    print("; ".join(f"{k}: {v:,}" for k, v in counts.items()) + f" ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
