"""The contract's rules, checked set-wise in one SQL pass over the staged rows."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cs360_pipeline.ingest.readers import (
    CONTROL_SQL,
    SHAPE_MACRO,
    Rejected,
    shape_sql,
)
from cs360_pipeline.ingest.staging import (
    BAD,
    DROPPED,
    DUPES,
    ROWS,
    SAMPLE_ROWS,
    STAGE,
    WITHHELD,
    Staged,
    duckdb_reason,
)
from cs360_pipeline.registry import Column, Dataset
from cs360_pipeline.registry.models import TEMPORAL_TYPES
from cs360_pipeline.sql import ident, literal

# A label starting with one of these is run as a formula by a spreadsheet that opens the table.
FORMULA_START = r"^[=+\-@\t\r]"


@dataclass(frozen=True)
class Rule:
    description: str
    condition: str  # SQL over _rows marking a violating row
    column: str | None
    value: str  # SQL giving what _rejects keeps of a violating row: a shape, never the value


@dataclass
class Verdict:
    total: int  # records in the file (staged + refused by the reader)
    bad_rows: int  # records rejected (reader + rules)
    staged_bad: int  # staged rows flagged by a rule (in _bad)
    rules: list[Rule]
    counts: list[int]
    months: list  # months of the good rows, for revisions
    problems: list[str]
    parse_rejects: list
    dropped_exact: int = 0  # good rows identical to an earlier good row (not rejected)
    dropped_other: int = 0  # keep_first: good rows of a key after its first (not rejected)
    kept_keys: int = 0  # keep_first: keys that had more than one distinct good row

    @property
    def dropped(self) -> int:
        """Rows of the file dropped as duplicates: neither loaded nor rejected."""
        return self.dropped_exact + self.dropped_other


def _bound_sql(col: Column, q: str, bound: float | str, op: str) -> tuple[str, str]:
    """(condition, description) for a min (op '<') or max (op '>') bound."""
    if col.type in TEMPORAL_TYPES:
        ref = "current_date" if bound == "today" else f"DATE {literal(str(bound))}"
        words = {"<": "before", ">": "after"}[op]
        said = "today (no future dates)" if bound == "today" else str(bound)
        return f"CAST({q} AS DATE) {op} {ref}", f"not be {words} {said}"
    word = {"<": "at least", ">": "at most"}[op]
    return f"{q} {op} {float(bound)!r}", f"be {word} {float(bound):g}"


def label_columns(dataset: Dataset) -> list[str]:
    """Text columns whose values become labels in published tables: checked as labels.

    A reference dataset (``load: replace``: beats, districts, tracts, schools) supplies the
    names that tables and spreadsheets show, so each of its free-text columns (VARCHAR, not an
    identifier, without an ``allowed`` list) must be a safe label.
    """
    if dataset.load != "replace":
        return []
    return [
        name
        for name, col in dataset.columns.items()
        if col.type == "VARCHAR" and not col.identifier and col.allowed is None
    ]


def _label_rules(name: str, shown: str) -> list[Rule]:
    """A label may not start like a spreadsheet formula, nor hide control characters."""
    q = ident(name)
    return [
        Rule(
            f"{name} must not start with a spreadsheet formula character (=, +, -, @, tab or "
            "carriage return)",
            f"regexp_matches({q}, {literal(FORMULA_START)})",
            name,
            shown,
        ),
        Rule(
            f"{name} must not contain control characters (e.g. tab, line break, zero-width or "
            "bidirectional marks)",
            f"regexp_matches({q}, {literal(CONTROL_SQL)})",
            name,
            shown,
        ),
    ]


def _rules(dataset: Dataset, converted: list[str], dupes: bool) -> list[Rule]:
    """Every contract rule as SQL over ``_rows``; one row may break several."""
    rules = []
    for name, col in dataset.columns.items():
        q = ident(name)
        shown = shape_sql(q) if not col.identifier else literal(WITHHELD)
        if name in converted:
            raw = ident("_raw_" + name)
            if col.values and col.type not in TEMPORAL_TYPES:
                what = f"one of {', '.join(col.values)} (values map) or a {col.type}"
            elif col.type in TEMPORAL_TYPES:
                formats = col.formats or [
                    dataset.timestamp_format if col.type == "TIMESTAMP" else dataset.date_format
                ]
                what = f"a {col.type} as {' or '.join(formats)}"
            else:
                what = f"a {col.type}"
            rules.append(
                Rule(
                    f"{name} must be {what}",
                    f"{raw} IS NOT NULL",
                    name,
                    shape_sql(raw) if not col.identifier else literal(WITHHELD),
                )
            )
            if col.required:
                rules.append(
                    Rule(f"{name} is required", f"{q} IS NULL AND {raw} IS NULL", name, "NULL")
                )
        elif col.required:
            rules.append(Rule(f"{name} is required", f"{q} IS NULL", name, "NULL"))
        if col.allowed is not None:
            allowed = ", ".join(literal(v) for v in col.allowed)
            rules.append(
                Rule(
                    f"{name} must be one of {', '.join(col.allowed)}",
                    f"{q} NOT IN ({allowed})",
                    name,
                    shown,
                )
            )
        if col.min is not None:
            cond, said = _bound_sql(col, q, col.min, "<")
            rules.append(Rule(f"{name} must {said}", cond, name, shown))
        if col.max is not None:
            cond, said = _bound_sql(col, q, col.max, ">")
            rules.append(Rule(f"{name} must {said}", cond, name, shown))
        if name in label_columns(dataset):
            rules += _label_rules(name, shown)
    if dupes:
        unique = (
            " (rows identical in every column count once: duplicates drop_exact)"
            if dataset.duplicates == "drop_exact"
            else ""
        )
        rules.append(
            Rule(
                f"({', '.join(dataset.key)}) must be unique in the file{unique}",
                "_dup IS NOT NULL",
                ", ".join(dataset.key),
                "NULL",
            )
        )
    for name, condition in dataset.checks.items():
        rules.append(Rule(f"check {name}: {condition}", f"NOT ({condition})", None, "NULL"))
    return rules


def validate(
    con: duckdb.DuckDBPyConnection, file_name: str, dataset: Dataset, staged: Staged
) -> Verdict:
    """One pass counts every rule (and computes derived columns); bad rows go to ``_bad``."""
    con.execute(SHAPE_MACRO)
    dupes = False
    if dataset.key and dataset.duplicates != "keep_first":
        key = ", ".join(ident(k) for k in dataset.key)
        # drop_exact: a key is repeated only by rows that differ; exact copies are one row.
        rows = (
            f"(SELECT DISTINCT {', '.join(compared_columns(dataset, staged))} FROM {STAGE})"
            if dataset.duplicates == "drop_exact"
            else STAGE
        )
        con.execute(
            f"CREATE TEMP TABLE {DUPES} AS SELECT {key}, true AS _dup FROM {rows} "
            f"GROUP BY {key} HAVING count(*) > 1"
        )
        dupes = con.execute(f"SELECT count(*) FROM {DUPES}").fetchall()[0][0] > 0
    rules = _rules(dataset, staged.converted, dupes)
    joined = (
        f"{ROWS} LEFT JOIN {DUPES} USING ({', '.join(ident(k) for k in dataset.key)})"
        if (dupes)
        else ROWS
    )
    flags = ", ".join(
        [f"coalesce({r.condition}, false) AS f{i}" for i, r in enumerate(rules)] or ["false AS f0"]
    )
    any_flag = " OR ".join(f"f{i}" for i in range(len(rules))) or "false"
    if dataset.period:
        period = f"CAST(date_trunc('month', {ident(dataset.period)}) AS DATE)"
        months_sql = (
            f"list(DISTINCT {period} ORDER BY {period}) FILTER "
            f"(WHERE NOT ({any_flag}) AND {period} IS NOT NULL)"
        )
    else:
        months_sql = "CAST([] AS DATE[])"
    # Counting each derived column forces it to be computed here, before any transaction.
    forced = [f"count({ident(n)})" for n in dataset.derived]
    flagged = f"SELECT *, {flags} FROM {joined}"
    try:
        counts_row = con.execute(
            "SELECT "
            + ", ".join(
                [f"count(*) FILTER (WHERE f{i})" for i in range(len(rules))]
                + [f"count(*) FILTER (WHERE {any_flag})", months_sql, *forced]
            )
            + f" FROM ({flagged})"
        ).fetchall()[0]
    except duckdb.Error as exc:
        raise Rejected(
            f"{file_name}: a derived column or check "
            f"({', '.join([*dataset.derived, *dataset.checks])}) cannot be computed from the "
            f"delivered values ({duckdb_reason(exc)}). Check the values it is computed from."
        ) from None
    counts = list(counts_row[: len(rules)])
    staged_bad = counts_row[len(rules)]
    months = counts_row[len(rules) + 1] or []
    problems = []
    if staged_bad:
        values = ", ".join(
            f"CASE WHEN f{i} THEN {r.value} END AS v{i}" for i, r in enumerate(rules)
        )
        kept_flags = ", ".join(f"f{i}" for i in range(len(rules)))
        con.execute(
            f"CREATE TEMP TABLE {BAD} AS SELECT _rid, _line, {kept_flags}, {values} "
            f"FROM ({flagged}) WHERE {any_flag}"
        )
        if staged.parse_rejects and staged.line_expr == "rowid + 2":
            shift_lines(con, staged)
        for i, (rule, count) in enumerate(zip(rules, counts, strict=True)):
            if count:
                lines = con.execute(
                    f"SELECT _line FROM {BAD} WHERE f{i} ORDER BY _line LIMIT {SAMPLE_ROWS}"
                ).fetchall()
                where = ", ".join(str(r[0]) for r in lines)
                problems.append(f"rule '{rule.description}': {count} row(s), e.g. line(s) {where}")
    unreadable = parse_problem(file_name, dataset, staged)
    if unreadable:
        problems.insert(0, unreadable)
    total = staged.rows + staged.rejected_lines
    bad = staged_bad + staged.rejected_lines
    verdict = Verdict(total, bad, staged_bad, rules, counts, months, problems, staged.parse_rejects)
    if total == 0:
        raise Rejected(
            f"{file_name}: the file has a header row but no data rows. "
            "Export the period's rows again."
        )
    if bad and (bad / total > dataset.max_bad_row_share or bad == total):
        limit = (
            f" {bad:,} of {total:,} rows ({bad / total:.1%}) break the contract; this dataset "
            f"accepts at most {dataset.max_bad_row_share:.1%} (max_bad_row_share)."
            if dataset.max_bad_row_share > 0 or bad == total
            else ""
        )
        raise Rejected(
            f"{file_name}: " + "; ".join(problems) + f".{limit} Correct the rows and re-send."
        )
    if dataset.duplicates != "reject":
        drop_duplicates(con, dataset, staged, verdict)
    return verdict


def compared_columns(dataset: Dataset, staged: Staged) -> list[str]:
    """What makes two rows identical: every contract column, and any text that did not parse.

    Values are compared as parsed (``01`` and ``1`` in an INTEGER column are the same), NULL
    equal to NULL; a value that did not parse is compared as delivered, so two different bad
    values never make two rows one.
    """
    return [ident(n) for n in dataset.columns] + [ident("_raw_" + n) for n in staged.converted]


def drop_duplicates(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, staged: Staged, verdict: Verdict
) -> None:
    """List in ``_dropped`` the good rows that repeat another, by the dataset's ``duplicates``.

    Only rows that pass every rule are dropped, so a copy never hides a broken row and a key
    keeps a good row even when another of its rows is rejected. An exact copy of an earlier row
    is dropped; under keep_first each key then keeps only its first row by ``duplicate_order``
    (ascending, NULLs last, then file order). Copies share their order values, so the row a key
    keeps is never one counted as an exact copy, and both counts are independent of the order.
    """
    good = f"{ROWS} ANTI JOIN {BAD} USING (_rid)" if verdict.staged_bad else ROWS
    compared = ", ".join(compared_columns(dataset, staged))
    exact = f"row_number() OVER (PARTITION BY {compared} ORDER BY _rid) > 1"
    keep_first = dataset.duplicates == "keep_first"
    key = ", ".join(ident(k) for k in dataset.key)
    if keep_first:
        order = ", ".join(f"{ident(c)} ASC NULLS LAST" for c in dataset.duplicate_order)
        later = f"row_number() OVER (PARTITION BY {key} ORDER BY {order}, _rid) > 1"
        keys = f", {key}"
    else:
        later, keys = "false", ""
    con.execute(
        f"CREATE TEMP TABLE {DROPPED} AS SELECT _rid, _exact{keys} FROM ("
        f"SELECT _rid, {exact} AS _exact, {later} AS _later{keys} FROM {good}) "
        "WHERE _exact OR _later"
    )
    verdict.dropped_exact, verdict.dropped_other = con.execute(
        f"SELECT count(*) FILTER (WHERE _exact), count(*) FILTER (WHERE NOT _exact) FROM {DROPPED}"
    ).fetchall()[0]
    if not verdict.dropped_other:
        return  # exact copies share their month: the months of the good rows stand
    verdict.kept_keys = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {DROPPED} WHERE NOT _exact)"
    ).fetchall()[0][0]
    if dataset.period:
        # A key's later rows may be the only ones of a month: months are those of kept rows.
        period = f"CAST(date_trunc('month', {ident(dataset.period)}) AS DATE)"
        verdict.months = (
            con.execute(
                f"SELECT list(DISTINCT {period} ORDER BY {period}) FILTER "
                f"(WHERE {period} IS NOT NULL) FROM {good} ANTI JOIN {DROPPED} USING (_rid)"
            ).fetchall()[0][0]
            or []
        )


def duplicates_message(dataset: Dataset, verdict: Verdict) -> str | None:
    """What was dropped as duplicates, for the load message: counts and column names only."""
    parts = []
    if verdict.dropped_exact:
        parts.append(
            f"dropped {verdict.dropped_exact:,} exact duplicate row(s) (identical in every "
            "contract column)"
        )
    if verdict.dropped_other:
        parts.append(
            f"kept one row per {', '.join(dataset.key)} for {verdict.kept_keys:,} key(s) "
            f"(first by {', '.join(dataset.duplicate_order)}), dropping "
            f"{verdict.dropped_other:,} other row(s)"
        )
    if not parts:
        return None
    return "; ".join(parts) + f" (duplicates: {dataset.duplicates})"


def parse_problem(file_name: str, dataset: Dataset, staged: Staged) -> str | None:
    """The reader's refusals, by line and column, each value described by its shape only.

    This reason reaches the ledger, which is shared, and a shifted row puts any value in any
    column: no line text and no value is quoted.
    """
    if not staged.parse_rejects:
        return None
    samples = []
    for reject in staged.parse_rejects[:SAMPLE_ROWS]:
        sample = f"line {reject.line} column {reject.column or '?'} ({reject.kind})"
        column = dataset.columns.get(reject.column or "")
        if reject.sample and column is not None and not column.identifier:
            sample += f": {reject.sample}"
        samples.append(sample)
    return (
        f"{staged.rejected_lines} line(s) do not match the contract's types or the CSV "
        f"structure, e.g. {'; '.join(samples)}. Rule: every value must parse as its declared "
        f"type (timestamps as {dataset.timestamp_format}, dates as {dataset.date_format}, unless "
        "the column declares its own format)"
    )


def shift_lines(con: duckdb.DuckDBPyConnection, staged: Staged) -> None:
    """Staged rows skip the reader's rejected lines: move ``_line`` past those before it."""
    lines = sorted({r[0] for r in staged.parse_rejects})
    # t = staged rows before each rejected line; a staged row moves down once per t <= its _rid.
    gaps = [line - 2 - i for i, line in enumerate(lines)]
    con.execute(
        f"UPDATE {BAD} SET _line = _line + "
        f"(SELECT count(*) FROM unnest({gaps!r}::BIGINT[]) AS g(t) WHERE g.t <= {BAD}._rid)"
    )


# -- loading ----------------------------------------------------------------------------------
