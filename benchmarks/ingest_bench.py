"""Ingest benchmark: the project loader against a plain DuckDB script, on the same generated file.

    .venv/bin/python benchmarks/ingest_bench.py --rows 10000000

1. Generates a police incidents CSV (the columns of ``sources/police/provider.yml`` dataset
   ``incidents``) with DuckDB into a temporary folder, with a few bad rows (unknown codes).
2. Runs, each in its own fresh Python process and into its own fresh database file:
   * ``loader``: the project's ``ingest_dataset`` (hash, header checks, typed read, every contract
     rule in SQL, derived columns, rejects, ledger, archive);
   * ``plain``: a hand-written DuckDB script: ``read_csv`` with explicit types into a temp table,
     the same rules as one ``count(*) FILTER`` pass, the same derived columns, insert of the good
     rows without identifiers into a file database.
3. Reports wall time, rows/s and peak RSS of each process (``ru_maxrss`` of the child), and the
   loader/plain ratios. Goal: both ratios at most 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

BAD_EVERY = 100_000  # one row in this many has an unknown victim_sex code (0.001 %)


def generate(path: Path, rows: int) -> None:
    import duckdb

    con = duckdb.connect(config={"threads": 2})
    con.execute("CREATE MACRO h(x, n) AS CAST(hash(x) % n AS BIGINT)")
    con.execute(
        f"""
        COPY (
            SELECT
                'INC' || lpad(CAST(i AS VARCHAR), 9, '0') AS incident_number,
                (['09A', '11A', '120', '13A', '13B', '23C', '23F', '35A', '290', '520'])
                    [1 + h(i * 7, 10)] AS offense_code,
                'Offense description ' || h(i * 11, 50) AS offense_description,
                CASE WHEN h(i * 13, 4) = 0 THEN (['11','12','40','99'])[1 + h(i, 4)] END
                    AS weapon_force_code,
                TIMESTAMP '2019-01-01' + to_seconds(CAST(h(i * 17, 157766400) AS BIGINT))
                    AS occurred_at,
                TIMESTAMP '2019-01-01' + to_seconds(CAST(h(i * 17, 157766400) AS BIGINT))
                    + to_seconds(CAST(h(i * 19, 86400) AS BIGINT)) AS reported_at,
                'B' || (h(i * 23, 100)) AS beat,
                (h(i * 29, 9000)) || ' BLOCK MAIN ST' AS block_address,
                'PERSON ' || h(i * 31, 100000) AS victim_name,
                DATE '1940-01-01' + CAST(h(i * 37, 25000) AS INTEGER) AS victim_dob,
                CASE WHEN i % {BAD_EVERY} = 7 THEN 'X'
                     ELSE (['M','F','U'])[1 + h(i * 41, 3)] END AS victim_sex,
                (['A','E','N'])[1 + h(i * 43, 3)] AS clearance_code,
                (['Y','N'])[1 + h(i * 47, 2)] AS domestic_violence
            FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT csv, HEADER true, TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S',
                       DATEFORMAT '%Y-%m-%d')
        """
    )
    con.close()


def run_loader(csv_path: Path, work: Path) -> dict[str, object]:
    from cs360_pipeline.ingest import ingest_dataset
    from cs360_pipeline.ingest.dropfolder import DropFolder
    from cs360_pipeline.registry import Provider
    from cs360_pipeline.registry.loader import load_provider
    from cs360_pipeline.sql import connect

    police = load_provider(PROJECT / "sources" / "police" / "provider.yml")
    config = police.model_dump()
    # The bench file has a few unknown codes on purpose: allow them as row-level rejects.
    config["datasets"]["incidents"]["max_bad_row_share"] = 0.001
    provider = Provider.model_validate(config)
    folder = DropFolder(work / "police")
    folder.inbox.mkdir(parents=True)
    os.link(csv_path, folder.inbox / "incidents_bench.csv")  # moved to archive/ by the loader
    con = connect(work / "raw.duckdb")
    outcomes = ingest_dataset(con, provider, "incidents", folder, log=lambda _: None)
    loaded = con.execute("SELECT count(*) FROM police__incidents").fetchall()[0][0]
    rejected = con.execute("SELECT count(*) FROM _rejects").fetchall()[0][0]
    con.close()
    return {"status": outcomes[0].status, "rows_loaded": loaded, "rows_rejected": rejected}


PLAIN_RULES = [
    "incident_number IS NULL",
    "offense_code IS NULL",
    "occurred_at IS NULL",
    "beat IS NULL",
    "victim_sex NOT IN ('M', 'F', 'U')",
    "clearance_code NOT IN ('A', 'E', 'N')",
    "domestic_violence NOT IN ('Y', 'N')",
    "dup",
]


def run_plain(csv_path: Path, work: Path) -> dict[str, object]:
    import duckdb

    con = duckdb.connect(str(work / "plain.duckdb"), config={"threads": 2})
    con.execute(
        f"""
        CREATE TEMP TABLE stage AS SELECT * FROM read_csv('{csv_path}', header = true,
            auto_detect = false, columns = {{
                'incident_number': 'VARCHAR', 'offense_code': 'VARCHAR',
                'offense_description': 'VARCHAR', 'weapon_force_code': 'VARCHAR',
                'occurred_at': 'TIMESTAMP', 'reported_at': 'TIMESTAMP', 'beat': 'VARCHAR',
                'block_address': 'VARCHAR', 'victim_name': 'VARCHAR', 'victim_dob': 'DATE',
                'victim_sex': 'VARCHAR', 'clearance_code': 'VARCHAR',
                'domestic_violence': 'VARCHAR'}},
            timestampformat = '%Y-%m-%d %H:%M:%S', dateformat = '%Y-%m-%d', store_rejects = true)
        """
    )
    con.execute(
        "CREATE TEMP TABLE dupes AS SELECT incident_number, true AS dup FROM stage "
        "GROUP BY incident_number HAVING count(*) > 1"
    )
    flags = ", ".join(f"coalesce({r}, false) AS f{i}" for i, r in enumerate(PLAIN_RULES))
    any_bad = " OR ".join(f"f{i}" for i in range(len(PLAIN_RULES)))
    flagged = f"SELECT *, {flags} FROM stage LEFT JOIN dupes USING (incident_number)"
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE f{i})" for i in range(len(PLAIN_RULES)))
        + f", count(*) FILTER (WHERE {any_bad}) FROM ({flagged})"
    ).fetchall()[0]
    con.execute(
        """
        CREATE TABLE incidents AS
        SELECT incident_number, offense_code, offense_description, weapon_force_code,
               occurred_at, reported_at, beat, victim_sex, clearance_code, domestic_violence,
               date_diff('year', victim_dob, CAST(occurred_at AS DATE))
                 - CASE WHEN strftime(CAST(occurred_at AS DATE), '%m%d')
                             < strftime(victim_dob, '%m%d') THEN 1 ELSE 0 END AS victim_age,
               weapon_force_code IN ('11', '12', '13', '14', '15') AS firearm
        FROM stage
        WHERE victim_sex IS NULL OR victim_sex IN ('M', 'F', 'U')
        """
    )
    loaded = con.execute("SELECT count(*) FROM incidents").fetchall()[0][0]
    con.close()
    return {"rows_loaded": loaded, "rows_rejected": counts[-1]}


def child(mode: str, csv_path: Path, work: Path) -> None:
    started = time.perf_counter()
    result = (run_loader if mode == "loader" else run_plain)(csv_path, work)
    result["inner_seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(mode: str, csv_path: Path, root: Path) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--csv", str(csv_path), "--work", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, best wall kept")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--child", choices=["loader", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.csv, args.work)
        return

    with tempfile.TemporaryDirectory(prefix="ingest-bench-", dir=args.dir) as scratch:
        root = Path(scratch)
        csv_path = root / "incidents_bench.csv"
        started = time.perf_counter()
        generate(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1048576
        print(f"generated {args.rows:,} rows, {size_mb:,.0f} MB in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        best: dict[str, dict[str, object]] = {}
        for _ in range(args.repeat):
            for mode in ("plain", "loader"):  # alternate, so both see the same cache state
                result = measure(mode, csv_path, root)
                if mode not in best or result["wall_seconds"] < best[mode]["wall_seconds"]:
                    best[mode] = result
        print(f"{'':8} {'wall s':>8} {'rows/s':>12} {'peak RSS MB':>12} {'loaded':>12} rejected")
        for mode in ("plain", "loader"):
            r = best[mode]
            print(
                f"{mode:8} {r['wall_seconds']:8.2f} {args.rows / r['wall_seconds']:12,.0f} "
                f"{r['peak_rss_mb']:12,.0f} {r['rows_loaded']:12,} {r['rows_rejected']}"
            )
        wall = best["loader"]["wall_seconds"] / best["plain"]["wall_seconds"]
        rss = best["loader"]["peak_rss_mb"] / best["plain"]["peak_rss_mb"]
        print(f"ratio loader/plain: wall {wall:.2f}x, peak memory {rss:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
