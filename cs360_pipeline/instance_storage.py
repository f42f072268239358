"""Dagster's local SQLite storage, with its database connections kept open while a process runs.

Dagster's SQLite event log creates an engine and opens a connection for every event it writes,
then closes it. A refresh writes about a thousand events (each step's start and outputs, each
asset check's plan and result, each asset's materialization, most of them twice: in the run's
own file and in the index), and opening them cost about a tenth of a small deployment's refresh.
This storage keeps one engine per database file instead: the index and the latest runs' files.

The files and tables are Dagster's own, so a Dagster home written with the plain SQLite storage
opens here unchanged and the other way round. ``instance.DAGSTER_YAML`` selects it. It replaces
one private method of the pinned Dagster release (``SqliteEventLogStorage._connect``, 1.13.x);
``tests/defs/test_instance_storage.py`` checks that a run through it reads back what it wrote.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import SingletonThreadPool

# Engines kept open: the index and the files of the runs written or read most recently. A
# long-lived process (the UI, the daemon) reads many runs; the oldest engine is closed first.
ENGINES_KEPT = 8


class ReusedConnectionEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log, one open engine per database file."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        """The open engine of one database file, created (and the file set up) the first time."""
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=SingletonThreadPool,  # one connection per thread, as SQLite wants
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > ENGINES_KEPT:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def _close_engines(self) -> None:
        while self._engines:
            self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        with self._db_lock:
            self._close_engines()  # the run files are deleted: no connection may stay open
        super().wipe()

    def upgrade(self) -> None:
        with self._db_lock:
            self._close_engines()
        super().upgrade()

    def dispose(self) -> None:
        with self._db_lock:
            self._close_engines()
        super().dispose()


class LocalStorage(DagsterSqliteStorage):
    """Dagster's local SQLite storage (runs, events, schedules) under the Dagster home, with the
    event log above. Configured in ``dagster.yaml`` as ``storage: custom:``."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # DagsterSqliteStorage.__init__ builds the plain event log; this builds the same three
        # storages with the event log above in its place.
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = ReusedConnectionEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(  # type: ignore[override]  # the base builds its own class by name
        cls, inst_data: ConfigurableClassData, config_value: dict[str, str]
    ) -> LocalStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
