"""The building blocks the contracts share: typed columns, named rules, a period's last day."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import pandera.ibis as pa

TEXT, DATE, BOOLEAN = dt.string, dt.date, dt.boolean
TIMESTAMP = dt.Timestamp(scale=6)  # DuckDB TIMESTAMP: microseconds, no time zone
BIGINT, INTEGER, DOUBLE = dt.int64, dt.int32, dt.float64


def column(*checks: pa.Check, dtype: Any = None, nullable: bool = True) -> pa.Column:
    """A column and its rules; ``dtype`` None leaves its type to whoever declares it (dbt's
    enforced model contract declares every published column's)."""
    return pa.Column(dtype, list(checks), nullable=nullable)


def required(*checks: pa.Check, dtype: Any = None) -> pa.Column:
    """A column that may not be NULL."""
    return column(*checks, dtype=dtype, nullable=False)


def one_of(values: Iterable[str]) -> pa.Check:
    allowed = sorted(set(values))
    return pa.Check.isin(allowed, error=f"one of {', '.join(allowed)}")


def at_least(bound: int) -> pa.Check:
    return pa.Check.ge(bound, error=f"at least {bound}")


def rule(words: str, holds: Callable[[ibis.Table], ibis.Column]) -> pa.Check:
    """A rule over whole rows, named in words; ``holds`` gives true for each row that keeps it."""
    return pa.Check(lambda data: holds(data.table), name=words, error=words)


def contained_in(column_name: str, other: ibis.Table, words: str) -> pa.Check:
    """Every non-NULL value of ``column_name`` appears in ``other``'s column of that name."""
    return rule(words, lambda t: t[column_name].isnull() | t[column_name].isin(other[column_name]))


@ibis.udf.scalar.builtin
def last_day(day: dt.date) -> dt.date:  # type: ignore[empty-body]
    """DuckDB's last_day: the month's last day."""


@ibis.udf.scalar.builtin
def make_date(year: dt.int64, month: dt.int64, day: dt.int64) -> dt.date:  # type: ignore[empty-body]
    """DuckDB's make_date."""


def period_end(t: ibis.Table) -> ibis.Column:
    """The last day of the row's period (month, quarter or year from period_start). Written
    with DuckDB's date functions: the ibis release in use renders intervals sqlglot rejects."""
    start = t.period_start
    return ibis.cases(
        (t.period_level == "month", last_day(start)),
        (t.period_level == "quarter", last_day(make_date(start.year(), start.month() + 2, 1))),
        else_=make_date(start.year(), 12, 31),
    )
