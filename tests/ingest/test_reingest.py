"""`cs360 reingest`: archived files read again through a corrected contract, nothing lost.

Real CSV files in a real drop folder, loaded by the loader into a real DuckDB file under one
contract, then replayed under another. After the replay the raw table is compared month by month
and kind by kind with an independent count over the archived bytes (Python's csv module, the
corrected contract and the latest-delivery rule applied by hand); the ledger keeps each file's
delivery time and revision chain; a kill just before the swap leaves the live database as it was.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cs360_pipeline.faults import FAULT_ENV
from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.loader import contract_digest
from cs360_pipeline.ingest.reingest import SCRATCH_NAME, ReingestError, reingest
from cs360_pipeline.registry import Provider
from cs360_pipeline.release.identity import describe_release
from cs360_pipeline.sql import connect
from tests.conftest import CALLS_DATASET, TEST_PROVIDER_HEADER

HEADER = "call_number,kind,received_at\n"
# The export's own code X, which the first contract does not know: its rows are rejected.
FIRST: dict[str, Any] = {
    **TEST_PROVIDER_HEADER,
    "datasets": {"calls": {**CALLS_DATASET, "max_bad_row_share": 0.2}},
}
# The corrected contract: X is the provider's code for B.
CORRECTED = copy.deepcopy(FIRST)
CORRECTED["datasets"]["calls"]["columns"]["kind"]["values"] = {"X": "B"}
# A contract that wants a column the files never had: every file is refused.
STRICTER = copy.deepcopy(FIRST)
STRICTER["datasets"]["calls"]["columns"]["priority"] = {"type": "VARCHAR", "required": True}


def calls(tag: str, counts: dict[int, int]) -> bytes:
    """``counts[month]`` calls in each month of 2025; every seventh is of the export's kind X."""
    kinds = "AABABAX"
    lines = [
        f"{tag}-{month:02d}-{i:03d},{kinds[i % 7]},2025-{month:02d}-{1 + i % 28:02d} 10:15:00\n"
        for month, count in counts.items()
        for i in range(count)
    ]
    return (HEADER + "".join(lines)).encode()


ANNUAL = calls("y", {m: 20 + m for m in range(1, 13)})
AUGUST = calls("aug", {8: 9})  # a corrected August: it replaces the annual file's August
DELIVERIES = [("calls_2025.csv", ANNUAL), ("calls_copy.csv", ANNUAL), ("calls_2025-08.csv", AUGUST)]


def independent_count(files: list[tuple[str, bytes]], codes: dict[str, str]) -> Counter:
    """(month, kind) -> rows: each month from its latest delivery, kinds mapped by ``codes``.

    A kind neither A nor B after mapping is rejected. Bytes equal to a file still giving all its
    months are a duplicate and give nothing.
    """
    owner: dict[str, int] = {}
    loaded: list[bytes] = []
    for _, data in files:
        months = {r["received_at"][:7] for r in csv.DictReader(io.StringIO(data.decode()))}
        earlier = [k for k, d in enumerate(loaded) if d == data]
        if any(all(owner.get(m) == k for m in months) for k in earlier):
            continue
        loaded.append(data)
        owner.update({m: len(loaded) - 1 for m in months})
    counts: Counter = Counter()
    for k, data in enumerate(loaded):
        for row in csv.DictReader(io.StringIO(data.decode())):
            kind = codes.get(row["kind"], row["kind"])
            if owner[row["received_at"][:7]] == k and kind in ("A", "B"):
                counts[(row["received_at"][:7], kind)] += 1
    return counts


def raw_count(raw_db: Path) -> Counter:
    with closing(connect(raw_db)) as con:
        rows = con.execute(
            "SELECT strftime(received_at, '%Y-%m'), kind, count(*) FROM police__calls GROUP BY ALL"
        ).fetchall()
    return Counter({(m, k): n for m, k, n in rows})


def ledger_rows(raw_db: Path) -> list[tuple]:
    """What the ledger says of each delivery, in delivery order, ids left out."""
    with closing(connect(raw_db)) as con:
        return con.execute(
            "SELECT file_name, status, sha256, processed_at, revision_of, superseded_by, "
            "replaced_months, rows_loaded, rows_rejected, contract_sha256 FROM _ingest_ledger "
            "ORDER BY processed_at, file_name"
        ).fetchall()


def content_digest(raw_db: Path) -> str:
    """Every row of the raw table, the rejects and the ledger: equal digests, equal databases."""
    digest = hashlib.sha256()
    with closing(connect(raw_db)) as con:
        for table in ("police__calls", "_rejects", "_ingest_ledger"):
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
            digest.update(repr(sorted(map(repr, rows))).encode())
    return digest.hexdigest()


def release_id(raw_db: Path) -> str:
    with closing(connect(raw_db)) as con:
        return describe_release(con, "policy", "code", ledger="_ingest_ledger").release_id


@pytest.fixture
def delivered(tmp_path: Path, folder: DropFolder, raw_db: Path) -> Path:
    """The three files delivered one run each under the first contract."""
    provider = Provider.model_validate(FIRST)
    for name, data in DELIVERIES:
        (folder.inbox / name).write_bytes(data)
        with closing(connect(raw_db)) as con:
            ingest_dataset(con, provider, "calls", folder, log=lambda _: None, time_zone="UTC")
    assert raw_count(raw_db) == independent_count(DELIVERIES, {})
    return raw_db


def replay(raw_db: Path, folder: DropFolder, config: dict[str, Any]) -> list:
    provider = Provider.model_validate(config)
    return reingest(raw_db, [provider], lambda _: folder, "UTC", log=lambda _: None)


def test_a_corrected_contract_is_applied_to_every_archived_file(
    delivered: Path, folder: DropFolder
) -> None:
    raw_db = delivered
    before, first_release = ledger_rows(raw_db), release_id(raw_db)
    assert [r[1] for r in before] == ["loaded", "duplicate", "loaded"]
    assert before[0][8] and before[2][8], "the first contract rejected the X rows"
    archive = sorted(p.name for p in folder.archive.iterdir())

    (replayed,) = replay(raw_db, folder, CORRECTED)

    assert raw_count(raw_db) == independent_count(DELIVERIES, {"X": "B"})
    assert (replayed.count("loaded"), replayed.count("duplicate")) == (2, 1)
    assert replayed.rows_after == sum(independent_count(DELIVERIES, {"X": "B"}).values())
    assert replayed.rows_before == sum(independent_count(DELIVERIES, {}).values())
    after = ledger_rows(raw_db)
    # The same deliveries, at the times they were delivered, revising each other as before.
    assert [r[:7] for r in after] == [r[:7] for r in before]
    assert [r[8] for r in after] == [0, None, 0], "nothing is rejected under the fix"
    digest = contract_digest(Provider.model_validate(CORRECTED).datasets["calls"])
    assert {r[9] for r in after} == {digest} != {r[9] for r in before}
    with closing(connect(raw_db)) as con:
        stamps = con.execute(
            "SELECT count(*) FROM police__calls c JOIN _ingest_ledger l "
            "ON l.file_name = c._source_file AND l.status = 'loaded' "
            "WHERE c._loaded_at <> l.processed_at"
        ).fetchall()[0][0]
        assert stamps == 0, "rows keep their file's delivery time"
        assert con.execute("SELECT count(*) FROM _rejects").fetchall()[0][0] == 0
        replayed_at = con.execute("SELECT count(reingested_at) FROM _ingest_ledger").fetchall()
        assert replayed_at == [(3,)]
    # Same files, another contract: another release id; nothing moved in the folders.
    assert release_id(raw_db) != first_release
    assert sorted(p.name for p in folder.archive.iterdir()) == archive
    assert not folder.quarantine.exists() and not list(folder.work.glob("delivery-*"))

    # The ledger is one a later delivery builds on: a second August correction revises it.
    second = calls("aug2", {8: 5})
    (folder.inbox / "calls_2025-08b.csv").write_bytes(second)
    with closing(connect(raw_db)) as con:
        provider = Provider.model_validate(CORRECTED)
        ingest_dataset(con, provider, "calls", folder, log=lambda _: None, time_zone="UTC")
    files = [*DELIVERIES, ("calls_2025-08b.csv", second)]
    assert raw_count(raw_db) == independent_count(files, {"X": "B"})


def test_files_the_new_contract_refuses_stay_archived_and_come_back(
    delivered: Path, folder: DropFolder
) -> None:
    raw_db = delivered
    (replayed,) = replay(raw_db, folder, STRICTER)
    assert replayed.count("quarantined") == 3 and replayed.rows_after == 0
    assert "priority" in replayed.outcomes[0].message
    statuses = [(r[0], r[1]) for r in ledger_rows(raw_db)]
    assert statuses == [(n, "quarantined") for n, _ in DELIVERIES]
    with closing(connect(raw_db)) as con:
        kept = [Path(r[0]) for r in con.execute("SELECT stored_as FROM _ingest_ledger").fetchall()]
    assert all(p.parent == folder.archive and p.is_file() for p in kept)
    assert not folder.quarantine.exists(), "the bytes stay in the archive"

    # The contract is put right: the refused files are read again and load.
    replay(raw_db, folder, CORRECTED)
    assert raw_count(raw_db) == independent_count(DELIVERIES, {"X": "B"})
    assert [r[1] for r in ledger_rows(raw_db)] == ["loaded", "duplicate", "loaded"]


KILL_SCRIPT = """
import json, sys
from pathlib import Path
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.reingest import reingest
from cs360_pipeline.registry import Provider

raw_db, root, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
folder = DropFolder(Path(root), settle_seconds=0)
reingest(Path(raw_db), [Provider.model_validate(config)], lambda _: folder, "UTC")
"""


def test_a_kill_before_the_swap_leaves_the_live_database_as_it_was(
    delivered: Path, folder: DropFolder
) -> None:
    raw_db = delivered
    before = content_digest(raw_db)
    env = {**os.environ, FAULT_ENV: "reingest:replayed"}
    args = [sys.executable, "-c", KILL_SCRIPT, str(raw_db), str(folder.root), json.dumps(CORRECTED)]
    died = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert died.returncode == -9, died.stderr
    assert (raw_db.parent / SCRATCH_NAME).exists(), "killed after the replay, before the swap"
    assert content_digest(raw_db) == before

    replay(raw_db, folder, CORRECTED)  # the next run starts from a fresh copy
    assert not (raw_db.parent / SCRATCH_NAME).exists()
    assert raw_count(raw_db) == independent_count(DELIVERIES, {"X": "B"})


def test_a_missing_or_changed_archived_file_stops_it_with_nothing_changed(
    delivered: Path, folder: DropFolder
) -> None:
    raw_db = delivered
    before = content_digest(raw_db)
    august = next(folder.archive.glob("*calls_2025-08.csv"))
    august.write_bytes(AUGUST.replace(b",A,", b",B,"))
    with pytest.raises(ReingestError, match=r"calls_2025-08\.csv: the archived bytes are not"):
        replay(raw_db, folder, CORRECTED)
    assert content_digest(raw_db) == before
    august.unlink()
    with pytest.raises(ReingestError, match=r"calls_2025-08\.csv is not in .*archive"):
        replay(raw_db, folder, CORRECTED)
    assert content_digest(raw_db) == before
    assert not (raw_db.parent / SCRATCH_NAME).exists()


def test_the_command_refuses_clearly(tmp_path: Path) -> None:
    from cs360_pipeline.refresh_lock import refresh_lock
    from cs360_pipeline.settings import Paths

    city = tmp_path / "city"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CS360_")}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")

    def cs360(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).parent / "cs360"), *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    made = cs360("init", str(city), "--name", "Town", "--code", "TWN", "--time-zone", "UTC")
    assert made.returncode == 0, made.stderr
    unknown = cs360("--deployment", str(city), "reingest", "--provider", "nosuch")
    assert unknown.returncode == 2
    assert "no provider 'nosuch' (providers: city)" in unknown.stderr
    nothing = cs360("--deployment", str(city), "reingest")
    assert (nothing.returncode, nothing.stdout.splitlines()[-1]) == (
        0,
        "Nothing to re-ingest: no file has been loaded yet.",
    )
    with refresh_lock(Paths(data_dir=city / "data", sources_dir=city / "sources"), "a test"):
        busy = cs360("--deployment", str(city), "reingest")
    assert busy.returncode == 3
    assert "Re-ingest not started: another refresh of this deployment is running" in busy.stderr
    assert "No release is published yet." in busy.stderr
