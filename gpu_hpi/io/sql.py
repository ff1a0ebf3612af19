"""DuckDB on the CPU: the connection (every core, a private spill directory, a memory limit, its
query interruptible from another thread), the parquet relation, column types, one-line read
errors, and period columns as SQL expressions (timestamps and dates by calendar arithmetic,
integers from `data.start` or as YYYYMM, strings through their distinct values parsed once in
Python)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import sys
import tempfile
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from ..backend.core import usable_cores
from ..data.calendar import PER_YEAR
from ..data.cells import CellTable
from ..errors import ConfigError, DataError
from .periods import (
    check_integer_periods,
    check_plausible_days,
    check_yyyymm,
    integer_start,
    months_as_weeks,
    parse_label,
    unsupported_period_type,
)

INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")


FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


@dataclass(frozen=True)
class SqlTable:
    """first: absolute period of the table's period 0; table: the cell table (host arrays) with its
    drop counts; missing_period: rows without both periods (the readers' own reason)."""

    first: int
    table: CellTable
    missing_period: int


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def relation(files: list[str], positions: bool = False) -> str:
    """The DuckDB table function reading parquet files: columns matched by name across files (not
    by position), and no Hive partition columns taken from the folder names; positions: with the
    columns `file_index` and `file_row_number`, to restore the files' order after a join."""
    names = ", ".join(_literal(f) for f in files)
    extra = ", file_row_number = true" if positions else ""
    return f"read_parquet([{names}], union_by_name = true, hive_partitioning = false{extra})"


def connect(progress: bool = False, memory_limit: str | None = None) -> Any:
    """A DuckDB connection using every core; progress: its progress bar, on a terminal;
    memory_limit: what DuckDB may hold (e.g. '4GB') before it spills, always into a private
    temporary directory removed at exit (never the working directory, DuckDB's default)."""
    con = _database(usable_cores(), memory_limit).cursor()
    con.execute(f"SET enable_progress_bar = {bool(progress and sys.stderr.isatty())}")
    with _OPEN_LOCK:
        _OPEN.add(con)
    return con


@functools.lru_cache(maxsize=4)
def _database(threads: int, memory_limit: str | None) -> Any:
    """One in-memory DuckDB database a process per settings, whose connections (cursors) the
    readers take: a new database costs ~15 ms, a connection to it microseconds."""
    import duckdb

    con = duckdb.connect(config={"threads": threads})
    con.execute(f"SET temp_directory = {_literal(_spill_directory())}")
    if memory_limit is not None:
        try:
            con.execute(f"SET memory_limit = {_literal(str(memory_limit))}")
        except duckdb.Error as exc:
            raise ConfigError(f"data.memory_limit={memory_limit!r}: {_first_line(exc)}") from exc
    return con


_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()  # this process's connections, for interrupt_queries
_OPEN_LOCK = threading.Lock()


def interrupt_queries() -> None:
    """Interrupt the queries running on this process's connections, from any thread: DuckDB looks
    for a signal only now and then (seconds apart on a large scan), an interrupt stops it at once.
    The interrupted query raises; a connection without one is unaffected."""
    import duckdb

    with _OPEN_LOCK:
        connections = list(_OPEN)
    for con in connections:
        with contextlib.suppress(duckdb.Error):  # closed since
            con.interrupt()


@functools.cache
def _spill_directory() -> str:
    path = tempfile.mkdtemp(prefix="gpu_hpi-duckdb-")
    atexit.register(shutil.rmtree, path, True)
    return path


def column_types(con: Any, source: str, files: list[str]) -> dict[str, str]:
    """name -> DuckDB type of the source's columns; DataError naming the file if it cannot be read."""
    import duckdb

    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    except duckdb.Error as exc:
        raise DataError(f"cannot read {files[0] if len(files) == 1 else files}: {_first_line(exc)}") from exc
    return {str(r[0]): str(r[1]) for r in rows}


def read_error(where: str, exc: BaseException) -> DataError:
    """The one-line error of a failed query over `where`; out of memory says what to change."""
    import duckdb

    if isinstance(exc, duckdb.OutOfMemoryException):
        return DataError(
            f"reading {where}: DuckDB ran out of memory ({_first_line(exc)}); raise data.memory_limit "
            "(or leave it null: 80% of RAM)"
        )
    return DataError(f"cannot read {where}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0]


class PeriodColumns:
    """SQL expressions for the absolute period of a period column, by its DuckDB type."""

    def __init__(
        self, con: Any, source: str, dated: str, periodicity: str, integer_periods: str, start: str | None
    ) -> None:
        # the checks look at the rows the reader keeps: both periods present (`dated`)
        self.con, self.all_rows, self.source = con, source, f"{source} WHERE {dated}"
        self.periodicity, self.integer_periods, self.start = periodicity, integer_periods, start
        self.labels: dict[str, Any] = {}  # string columns: the table of their parsed distinct values
        self.label_table: dict[str, str] = {}  # column -> the name of its table in `labels`

    def expression(self, name: str, kind: str) -> str:
        col = quote(name)
        if kind.startswith("TIMESTAMPTZ") or kind.startswith("TIMESTAMP WITH TIME ZONE"):
            raise Unsupported(f"column {name!r} is a timestamp with a time zone")
        if kind.startswith(("TIMESTAMP", "DATE")):
            self._check_dates(name, col)
            if self.periodicity == "week":  # calendar.days_to_period: ISO weeks from Monday 1969-12-29
                return f"CAST(floor((({col}::DATE - DATE '1970-01-01') + 3) / 7) AS BIGINT)"
            per = 12 // PER_YEAR[self.periodicity]
            months = f"(year({col}) * 12 + month({col}) - 1)"
            return months if per == 1 else f"({months} // {per})"
        if kind in INTEGER_TYPES:
            if self.periodicity == "week" and self.integer_periods == "yyyymm":
                raise months_as_weeks(name, "YYYYMM")
            return self._integers(name, col)
        if kind == "VARCHAR":
            return self._strings(name, col)
        raise unsupported_period_type(name, kind.lower())

    def order(self, name: str, kind: str) -> str:
        """An expression ordering the values of a period column in time within a period (after
        `expression`): the timestamp or date itself, the day of 'YYYY-MM-DD' strings, else 0 (rows
        then decide), as io's order within a period."""
        col = quote(name)
        if kind.startswith(("TIMESTAMP", "DATE")):
            return col
        table = self.label_table.get(name)
        if table is not None and self.labels[table].column("day").null_count == 0:
            return f"(SELECT day FROM {table} WHERE label = {col})"
        return "0"

    def _check_dates(self, name: str, col: str) -> None:
        """The column's dates are plausible (io.periods.check_plausible_days), from its extremes (parquet
        statistics: no scan); a column DuckDB cannot convert (nanoseconds stored as milliseconds
        overflow) goes to the pyarrow reader, whose message names the column and the unit."""
        import duckdb

        extremes = f"min({col})::DATE - DATE '1970-01-01', max({col})::DATE - DATE '1970-01-01'"
        try:
            ((lo, hi),) = self.con.execute(f"SELECT {extremes} FROM {self.all_rows}").fetchall()
        except duckdb.Error as exc:
            raise Unsupported(f"column {name!r}: {_first_line(exc)}") from exc
        if lo is not None:
            check_plausible_days(name, int(lo), int(hi), self.start is not None)

    def _integers(self, name: str, col: str) -> str:
        """YYYYMM numbers, or positions from data.start; checked by the streaming reader's rules."""
        (row,) = self.con.execute(
            f"SELECT min({col}), max({col}), min({col} % 100), max({col} % 100) FROM {self.source}"
        ).fetchall()
        lo, hi, month_lo, month_hi = (None if v is None else int(v) for v in row)
        if self.integer_periods == "yyyymm":
            if month_lo is not None and month_hi is not None:
                check_yyyymm(name, month_lo, month_hi)
            per = 12 // PER_YEAR[self.periodicity]
            months = f"(({col} // 100) * 12 + {col} % 100 - 1)"
            expr = months if per == 1 else f"({months} // {per})"
            bounds = [((v // 100) * 12 + v % 100 - 1) // per for v in (lo, hi) if v is not None]
        else:
            offset = integer_start(name, self.start, self.periodicity)
            expr = f"({col} + {offset})"
            bounds = [v + offset for v in (lo, hi) if v is not None]
        if bounds:
            check_integer_periods(name, bounds[0], bounds[-1])
        return f"CAST({expr} AS BIGINT)"

    def _strings(self, name: str, col: str) -> str:
        import pyarrow as pa

        values = [r[0] for r in self.con.execute(f"SELECT DISTINCT {col} FROM {self.source}").fetchall()]
        labels = [v for v in values if v is not None and v.strip()]  # a blank one is missing: no period
        periods = [parse_label(v, name, self.periodicity) for v in labels]
        text = pa.array(labels, pa.string())
        try:  # ISO dates with a day order the sales within a period; 'YYYY-MM' labels have none
            days = text.cast(pa.date32()).cast(pa.int32())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            days = pa.nulls(len(labels), pa.int32())
        table = self.label_table[name] = f"labels_{len(self.labels)}"
        self.labels[table] = pa.table({"label": text, "period": pa.array(periods, pa.int64()), "day": days})
        self.con.register(table, self.labels[table])
        return f"(SELECT period FROM {table} WHERE label = {col})"


class Unsupported(Exception):
    """A column this reader does not handle (the pyarrow reader does)."""
