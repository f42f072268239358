"""Writes Arrow tables as the CSV dialect partners actually deliver (and the beat map as GeoJSON).

DuckDB's CSV writer is used because it quotes a field only when it must (pyarrow's "needed"
style still quotes every string), writes NULL as an empty field, ``\\n`` line ends and
timestamps as ``YYYY-MM-DD HH:MM:SS``: exactly what the ingest contracts expect.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import duckdb
import pyarrow as pa

# A delivered file has sat in the inbox a while before a refresh takes it: the demo's files are
# dated this far back so a refresh straight after generating passes the settle rule.
DELIVERED_AGE_SECONDS = 24 * 3600


def _deliver(partial: Path, path: Path) -> None:
    """Rename a finished file into place, dated as delivered a while ago."""
    os.replace(partial, path)
    delivered = time.time() - DELIVERED_AGE_SECONDS
    os.utime(path, (delivered, delivered))


class CsvWriter:
    """One in-memory DuckDB connection reused for every file of a run."""

    def __init__(self) -> None:
        self._con = duckdb.connect(":memory:")

    def write(self, table: pa.Table, path: Path) -> int:
        """Write ``table`` to ``path`` (parents created); returns the number of data rows."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename, so a sensor watching the inbox never sees half a
        # file (the temporary name starts with a dot and does not end in .csv).
        partial = path.with_name(f".{path.name}.part")
        self._con.register("demo_extract", table)
        try:
            target = str(partial).replace("'", "''")
            self._con.execute(
                f"COPY demo_extract TO '{target}' (FORMAT csv, HEADER true, DELIMITER ',')"
            )
        finally:
            self._con.unregister("demo_extract")
        _deliver(partial, path)
        return table.num_rows

    def write_json(self, data: object, path: Path) -> None:
        """Write ``data`` as compact JSON (a GeoJSON beat map), delivered like the CSV files."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.part")
        partial.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
        _deliver(partial, path)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> CsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
