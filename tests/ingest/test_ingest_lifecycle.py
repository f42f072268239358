"""The life of one delivered file: every file ends loaded, quarantined or duplicate, once.

Real files in a real inbox, a real DuckDB file, and for crashes a real process killed by SIGKILL
at each named point of the ingest, then run again: ledger, archive, quarantine, inbox and the
raw table must agree afterwards, whatever the point.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import NAME_MAX, DropFolder, printable_name
from cs360_pipeline.registry import Provider
from cs360_pipeline.release.identity import describe_release
from cs360_pipeline.settings import PROJECT_DIR, settle_seconds
from cs360_pipeline.sql import connect
from tests.conftest import CALLS_DATASET, TEST_PROVIDER_HEADER

CONFIG: dict[str, Any] = {
    **TEST_PROVIDER_HEADER,
    "datasets": {
        "calls": CALLS_DATASET,
        "beats": {
            "title": "Beats",
            "file_pattern": "beats*",
            "load": "replace",
            "cadence": "as_needed",
            "columns": {"beat": {"type": "VARCHAR", "required": True}},
        },
    },
}
PROVIDER = Provider.model_validate(CONFIG)
HEADER = "call_number,kind,received_at\n"


def calls(*rows: str) -> bytes:
    return (HEADER + "".join(f"{r}\n" for r in rows)).encode()


AUG = calls("C1,A,2025-08-01 10:00:00", "C2,B,2025-08-02 11:00:00", "C3,A,2025-08-30 12:00:00")
AUG_V2 = calls("C1,A,2025-08-01 10:00:00", "C2,A,2025-08-02 11:00:00")
SEP = calls("S1,A,2025-09-01 10:00:00")
BAD = calls("X1,Z,2025-08-01 10:00:00")  # kind Z breaks the allowed rule: quarantined


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def csv_rows(data: bytes) -> list[tuple[str, str]]:
    """(call_number, kind) of every data row, counted by Python's csv module, not DuckDB."""
    return sorted((r["call_number"], r["kind"]) for r in csv.DictReader(io.StringIO(data.decode())))


def run(con: duckdb.DuckDBPyConnection, folder: DropFolder, dataset: str = "calls") -> list:
    return ingest_dataset(con, PROVIDER, dataset, folder, log=lambda _: None)


def ledger(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT file_name, status, sha256, stored_as FROM _ingest_ledger ORDER BY processed_at"
    ).fetchall()


def raw_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute("SELECT call_number, kind FROM police__calls ORDER BY ALL").fetchall()


def assert_settled(folder: DropFolder) -> None:
    """Nothing left half done: no inbox entry, no snapshot or scratch file in .work/."""
    assert list(folder.inbox.iterdir()) == []
    assert not folder.work.exists() or list(folder.work.iterdir()) == []


# -- names the filesystem allows --------------------------------------------------------------


def test_a_250_byte_name_loads_and_every_kept_name_fits(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """Archive, quarantine and reason file names stay within 255 bytes and keep the extension."""
    good = "calls_" + "g" * 240 + ".csv"
    bad = "calls_" + "b" * 240 + ".csv"
    assert len(good.encode()) == 250
    (folder.inbox / good).write_bytes(AUG)
    (folder.inbox / bad).write_bytes(BAD)

    outcomes = run(con, folder)

    assert sorted((o.file_name, o.status) for o in outcomes) == [
        (bad, "quarantined"),
        (good, "loaded"),
    ]
    kept = [*folder.archive.iterdir(), *folder.quarantine.iterdir()]
    assert len(kept) == 3  # the loaded file, the quarantined one and its reason
    for path in kept:
        assert len(path.name.encode()) <= NAME_MAX
    archived = next(folder.archive.iterdir())
    assert archived.name.startswith(sha(AUG)[:16] + "__calls_gggg")
    assert archived.name.endswith("~.csv") and archived.read_bytes() == AUG
    stored = {Path(r[3]).name for r in ledger(con)}
    assert stored == {p.name for p in kept if not p.name.endswith(".reason.txt")}
    assert run(con, folder) == []  # the next run has nothing to trip over
    assert_settled(folder)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"calls_\xff\xfe.csv", "calls_\\xff\\xfe.csv"),
        (b"calls_caf\xe9.csv", "calls_caf\\xe9.csv"),
        (b"calls_a\nb\tc\r.csv", "calls_a\\x0ab\\x09c\\x0d.csv"),
        (b"calls_\xe2\x80\xaeexe.csv", "calls_\\u202eexe.csv"),
        (b"calls_'q\"uote.csv", "calls_'q\"uote.csv"),
    ],
)
def test_any_name_loads_under_a_printable_rendering(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, raw: bytes, shown: str
) -> None:
    """Names that are not UTF-8 or hold control characters are stored as printable escapes."""
    inbox = os.fsencode(folder.inbox)
    with open(os.path.join(inbox, raw), "wb") as handle:
        handle.write(AUG)

    outcomes = run(con, folder)

    assert [(o.file_name, o.status) for o in outcomes] == [(shown, "loaded")]
    assert [r[:2] for r in ledger(con)] == [(shown, "loaded")]
    assert con.execute("SELECT DISTINCT _source_file FROM police__calls").fetchall() == [(shown,)]
    assert (folder.archive / f"{sha(AUG)[:16]}__{shown}").read_bytes() == AUG
    assert shown.isprintable()
    assert_settled(folder)


def test_a_leading_dash_is_just_a_name(con: duckdb.DuckDBPyConnection, folder: DropFolder) -> None:
    """A pattern matching a name that starts with a dash takes it like any other."""
    wide = DropFolder(folder.root, settle_seconds=0)
    (wide.inbox / "beats-rf.csv").write_bytes(b"beat\nB1\n")

    assert [o.status for o in run(con, wide, "beats")] == ["loaded"]
    assert printable_name("-rf") == "-rf"
    assert_settled(wide)


# -- entries that are not files ---------------------------------------------------------------


def test_symlinks_and_folders_are_refused_into_quarantine(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A link is moved itself (never followed), a folder whole; each gets a row and a reason."""
    outside = tmp_path / "elsewhere" / "secret.csv"
    outside.parent.mkdir()
    outside.write_bytes(AUG)
    (folder.inbox / "calls_link.csv").symlink_to(outside)
    (folder.inbox / "calls_dangling.csv").symlink_to(tmp_path / "nowhere")
    (folder.inbox / "calls_folder").mkdir()
    (folder.inbox / "calls_folder" / "inside.csv").write_bytes(AUG)

    outcomes = run(con, folder)

    assert [(o.file_name, o.status) for o in outcomes] == [
        ("calls_dangling.csv", "quarantined"),
        ("calls_folder", "quarantined"),
        ("calls_link.csv", "quarantined"),
    ]
    assert "symbolic link" in outcomes[2].message and "folder" in outcomes[1].message
    rows = {r[0]: r for r in ledger(con)}
    link = Path(rows["calls_link.csv"][3])
    assert link.parent == folder.quarantine and link.is_symlink()
    assert link.readlink() == outside and outside.read_bytes() == AUG
    moved = Path(rows["calls_folder"][3])
    assert (moved / "inside.csv").read_bytes() == AUG
    for name, row in rows.items():
        reason = Path(row[3] + ".reason.txt").read_text(encoding="utf-8")
        assert reason.startswith(f"{name}: this is a ")
    assert not con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'police__calls'"
    ).fetchall()[0][0]
    assert_settled(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_an_unreadable_file_is_refused(con: duckdb.DuckDBPyConnection, folder: DropFolder) -> None:
    path = folder.inbox / "calls_locked.csv"
    path.write_bytes(AUG)
    path.chmod(0)

    outcomes = run(con, folder)

    assert [(o.file_name, o.status) for o in outcomes] == [("calls_locked.csv", "quarantined")]
    assert "permission denied" in outcomes[0].message
    assert_settled(folder)


def test_files_matching_no_dataset_stay_in_the_inbox(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A name no dataset expects is left for the steward, untouched and not ledgered."""
    (folder.inbox / "notes.txt").write_bytes(b"hello")

    assert run(con, folder) == []
    assert (folder.inbox / "notes.txt").read_bytes() == b"hello"
    assert ledger(con) == []


# -- the settle rule and the snapshot ---------------------------------------------------------


def test_settle_seconds_comes_from_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CS360_SETTLE_SECONDS", raising=False)
    assert settle_seconds() == 30.0
    assert DropFolder(Path("x")).settle_seconds == 30.0
    monkeypatch.setenv("CS360_SETTLE_SECONDS", "5")
    assert DropFolder(Path("x")).settle_seconds == 5.0
    monkeypatch.setenv("CS360_SETTLE_SECONDS", "soon")
    with pytest.raises(ValueError, match="CS360_SETTLE_SECONDS must be a number"):
        settle_seconds()


def test_a_recent_file_waits_until_it_has_settled(
    monkeypatch: pytest.MonkeyPatch, con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    monkeypatch.setenv("CS360_SETTLE_SECONDS", "60")
    settling = DropFolder(folder.root)
    path = folder.inbox / "calls_2025_08.csv"
    path.write_bytes(AUG)
    (folder.inbox / "calls_link.csv").symlink_to(path)

    assert run(con, settling) == []
    assert path.read_bytes() == AUG and ledger(con) == []

    old = time.time() - 120
    os.utime(path, (old, old))
    os.utime(folder.inbox / "calls_link.csv", (old, old), follow_symlinks=False)
    assert [o.status for o in run(con, settling)] == ["loaded", "quarantined"]


def test_a_file_growing_during_the_copy_is_not_loaded(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A writer still appending: the snapshot differs from the inbox file, so it waits."""
    path = folder.inbox / "calls_2025_08.csv"
    rows = "".join(f"G{n},A,2025-08-01 10:00:00\n" for n in range(200_000))
    path.write_bytes((HEADER + rows).encode())
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
            "os.write(fd, b'W0,A,2025-08-01 10:00:00\\n')\n"
            "print('writing', flush=True)\n"
            "n = 1\n"
            "while True:\n"
            "    os.write(fd, b'W%d,A,2025-08-01 10:00:00\\n' % n)\n"
            "    n += 1\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
        log: list[str] = []
        assert ingest_dataset(con, PROVIDER, "calls", folder, log=log.append) == []
    finally:
        writer.kill()
        writer.wait()
    assert "changed while it was copied (still being written); it waits" in log[-1]
    assert ledger(con) == []
    assert path.exists() and list(folder.work.iterdir()) == []

    outcomes = run(con, folder)

    delivered = path.read_bytes() if path.exists() else None
    assert delivered is None  # taken this time
    kept = next(folder.archive.iterdir()).read_bytes()
    assert [o.rows_loaded for o in outcomes] == [len(csv_rows(kept))]
    assert ledger(con)[0][2] == sha(kept)


# -- crashes ----------------------------------------------------------------------------------

INGEST = """
import json, sys
from pathlib import Path
from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.registry import Provider
from cs360_pipeline.sql import connect

config, root, db = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
con = connect(db)
ingest_dataset(con, Provider.model_validate(config), "calls", DropFolder(root, settle_seconds=0))
con.close()
"""

FAULT_POINTS = [
    "ingest:snapshot_taken",
    "ingest:committed",
    "ingest:archived",
    "ingest:quarantine_committed",
    "ingest:quarantined",
]


def ingest_process(folder: DropFolder, raw_db: Path, fault: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "CS360_FAULT_AT"}
    if fault:
        env["CS360_FAULT_AT"] = fault
    result = subprocess.run(
        [sys.executable, "-c", INGEST, json.dumps(CONFIG), str(folder.root), str(raw_db)],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode in (0, -signal.SIGKILL), result.stderr.decode()
    return result.returncode


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_a_kill_at_any_point_is_finished_by_the_next_run(
    tmp_path: Path, folder: DropFolder, raw_db: Path, point: str
) -> None:
    """Killed at the point (again each run while it is reached), then run clean: all agree."""
    outside = tmp_path / "outside.csv"
    outside.write_bytes(SEP)
    delivered = {"calls_a.csv": AUG, "calls_b.csv": BAD, "calls_c.csv": AUG}
    for name, data in delivered.items():
        (folder.inbox / name).write_bytes(data)
    (folder.inbox / "calls_d.csv").symlink_to(outside)

    kills = 0
    for _ in range(6):
        if ingest_process(folder, raw_db, point) == 0:
            break
        kills += 1
    assert kills >= 1, f"{point} was never reached"
    assert ingest_process(folder, raw_db, None) == 0

    with connect(raw_db, read_only=True) as con:
        rows = con.execute(
            "SELECT file_name, status, sha256, stored_as FROM _ingest_ledger ORDER BY file_name"
        ).fetchall()
        loaded = raw_rows(con)
    assert [r[:2] for r in rows] == [
        ("calls_a.csv", "loaded"),
        ("calls_b.csv", "quarantined"),
        ("calls_c.csv", "duplicate"),
        ("calls_d.csv", "quarantined"),
    ]
    for name, _, digest, stored in rows[:3]:
        kept = Path(stored)
        assert kept.read_bytes() == delivered[name] and sha(kept.read_bytes()) == digest
    assert Path(rows[3][3]).is_symlink() and outside.read_bytes() == SEP
    for _, status, _, stored in rows:
        assert Path(stored + ".reason.txt").exists() == (status == "quarantined")
    assert sorted(p.name for p in folder.archive.iterdir()) == sorted(
        {Path(rows[0][3]).name, Path(rows[2][3]).name}
    )
    assert len(list(folder.quarantine.iterdir())) == 4
    assert loaded == csv_rows(AUG)
    assert_settled(folder)


def test_a_resend_after_a_kill_is_a_new_file(folder: DropFolder, raw_db: Path) -> None:
    """Same bytes under the same name, delivered again after the kill: ledgered, not deleted."""
    inbox_file = folder.inbox / "calls_a.csv"
    inbox_file.write_bytes(AUG)
    assert ingest_process(folder, raw_db, "ingest:archived") == -signal.SIGKILL
    inbox_file.unlink()
    inbox_file.write_bytes(AUG)  # the partner sends it again: a new inode, a new mtime
    later = time.time() + 5
    os.utime(inbox_file, (later, later))

    assert ingest_process(folder, raw_db, None) == 0

    with connect(raw_db, read_only=True) as con:
        assert con.execute(
            "SELECT file_name, status FROM _ingest_ledger ORDER BY processed_at"
        ).fetchall() == [("calls_a.csv", "loaded"), ("calls_a.csv", "duplicate")]
        assert raw_rows(con) == csv_rows(AUG)
    assert_settled(folder)


# -- revisions --------------------------------------------------------------------------------


def chain(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT delivery_id, file_name, status, sha256, superseded_by_id FROM _ingest_ledger "
        "ORDER BY processed_at"
    ).fetchall()


def current(con: duckdb.DuckDBPyConnection) -> list[str]:
    return describe_release(con, "policy", "code", ledger="_ingest_ledger").input_files


def test_revisions_under_one_name_form_a_chain(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """v1 of August, a corrected v2 under the same name, then v1 again to undo the correction."""
    name = "calls_2025-08.csv"
    for data in (AUG, AUG_V2, AUG):
        (folder.inbox / name).write_bytes(data)
        assert [(o.file_name, o.status) for o in run(con, folder)] == [(name, "loaded")]

    assert raw_rows(con) == csv_rows(AUG)
    v1, v2, v1_again = chain(con)
    assert [r[2] for r in (v1, v2, v1_again)] == ["loaded"] * 3
    assert v1[4] == v2[0] and v2[4] == v1_again[0] and v1_again[4] is None
    assert v1[3] == v1_again[3] == sha(AUG) and v1[0] != v1_again[0]
    assert current(con) == [f"police/{name}"]
    assert_settled(folder)


def test_only_the_current_bytes_are_a_duplicate(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A correction under a new name replaces August; the original re-sent restores it."""
    deliveries = [
        ("calls_2025-08.csv", AUG, "loaded"),
        ("calls_2025-09.csv", SEP, "loaded"),
        ("calls_2025-08_fix.csv", AUG_V2, "loaded"),
        ("calls_2025-08_fix_again.csv", AUG_V2, "duplicate"),
        ("calls_2025-08.csv", AUG, "loaded"),
    ]
    for name, data, status in deliveries:
        (folder.inbox / name).write_bytes(data)
        assert [(o.file_name, o.status) for o in run(con, folder)] == [(name, status)]

    assert raw_rows(con) == sorted(csv_rows(AUG) + csv_rows(SEP))
    assert current(con) == ["police/calls_2025-08.csv", "police/calls_2025-09.csv"]
    superseded = con.execute(
        "SELECT count(*) FROM _ingest_ledger WHERE superseded_by IS NOT NULL"
    ).fetchall()
    assert superseded == [(2,)]  # the first August and the fix


def test_a_replace_dataset_supersedes_every_earlier_file(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    for name, data in [("beats_v1.csv", b"beat\nB1\n"), ("beats_v2.csv", b"beat\nB2\n")]:
        (folder.inbox / name).write_bytes(data)
        run(con, folder, "beats")

    assert current(con) == ["police/beats_v2.csv"]


def test_a_file_that_fails_to_load_holds_up_no_other(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """An operator's broken table: each file is still tried, kept, and the error raised after."""
    con.execute("CREATE TABLE police__calls (call_number INTEGER)")
    (folder.inbox / "calls_a.csv").write_bytes(AUG)
    (folder.inbox / "calls_b.csv").write_bytes(SEP)
    log: list[str] = []

    with pytest.raises(duckdb.Error):
        ingest_dataset(con, PROVIDER, "calls", folder, log=log.append)

    assert [line.split(": ")[1] for line in log] == ["calls_a.csv", "calls_b.csv"]
    assert all("left in the inbox" in line for line in log)
    assert sorted(p.name for p in folder.inbox.iterdir()) == ["calls_a.csv", "calls_b.csv"]
    assert list(folder.work.iterdir()) == [] and ledger(con) == []


def test_an_older_ledger_gets_ids_and_its_same_name_chains(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """Rows written before ids existed get one; of two current files of one name, the later wins."""
    con.execute(
        "CREATE TABLE _ingest_ledger (file_name VARCHAR NOT NULL, provider VARCHAR NOT NULL, "
        "dataset VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, "
        "rows_read BIGINT, rows_loaded BIGINT, status VARCHAR NOT NULL, reason VARCHAR, "
        "stored_as VARCHAR, first_period DATE, last_period DATE, "
        "processed_at TIMESTAMPTZ NOT NULL, superseded_by VARCHAR)"
    )
    for digest, at in [("a" * 64, "2025-09-01"), ("b" * 64, "2025-10-01")]:
        con.execute(
            "INSERT INTO _ingest_ledger (file_name, provider, dataset, sha256, size_bytes, "
            "status, processed_at) VALUES ('calls_2025-08.csv', 'police', 'calls', ?, 1, "
            "'loaded', CAST(? AS TIMESTAMPTZ))",
            [digest, at],
        )

    assert run(con, folder) == []

    first, second = chain(con)
    assert first[0] and second[0] and first[0] != second[0]
    assert first[4] == second[0] and second[4] is None
    assert current(con) == ["police/calls_2025-08.csv"]
