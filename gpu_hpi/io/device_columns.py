"""What the device readers compute from libcudf's columns (io/device.py's operations): periods of
every date type and periodicity, the dates' plausibility, group codes, and the cell table after the
drop rules (data.rules), so that a table-only GPU run is libcudf's work alone."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data.cells import CellTable, from_keys
from ..data.pairs import Pairs
from ..data.rules import COLUMNS, applicable, check_strict
from ..data.tabulate import build_cell_table
from .device import Ops, library
from .periods import (
    TICKS_PER_DAY,
    check_plausible_days,
    column_periods,
    host_dates,
    order_within_period,
    undated,
    zoned,
)

TIMESTAMP_UNITS = {
    "TIMESTAMP_SECONDS": "s",
    "TIMESTAMP_MILLISECONDS": "ms",
    "TIMESTAMP_MICROSECONDS": "us",
    "TIMESTAMP_NANOSECONDS": "ns",
    "TIMESTAMP_DAYS": "D",
}


def _unit(col: Any) -> str | None:
    """The tick unit of a timestamp or date column ('D' for days), else None."""
    return TIMESTAMP_UNITS.get(col.type().id().name)


def missing_periods(ops: Ops, col: Any) -> Any | None:
    """A bool column of the rows of a period or date column without a value (null, or blank
    text: text is converted on the host anyway, where io.periods.undated tells it), or None where
    every row has one."""
    if col.type().id().name == "STRING":
        mask = undated(col.to_arrow())
        mask = mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask
        return ops.from_host(mask) if pc.any(mask).as_py() else None
    return ops.is_null(col) if col.null_count() else None


def check_dates(ops: Ops, col: Any, name: str, start_given: bool = False) -> None:
    """DataError unless the dates of a timestamp column lie in PLAUSIBLE_YEARS (from its extreme
    ticks, before any calendar arithmetic that would wrap them)."""
    unit = _unit(col)
    extremes = None if unit is None else ops.minmax(ops.ticks(col))
    if unit is not None and extremes is not None:
        per_day = 1 if unit == "D" else TICKS_PER_DAY[unit]
        check_plausible_days(name, extremes[0] // per_day, extremes[1] // per_day, start_given)


def periods(
    ops: Ops,
    col: Any,
    name: str,
    periodicity: str,
    integer_periods: str = "index",
    start: str | None = None,
    file_type: pa.DataType | None = None,
) -> Any:
    """Absolute periods (int32 column) of a period column without nulls: timestamps and dates by
    libcudf's calendar fields (months, quarters, years) or day arithmetic (ISO weeks), checked to be
    plausible first; strings, integers and zoned timestamps (whose zone libcudf drops on reading)
    by the host conversion (io.periods.column_periods), the result moved back."""
    unit = _unit(col)
    if unit is None or zoned(file_type):
        host = host_dates(col.to_arrow(), file_type)
        return ops.from_host(column_periods(host, name, periodicity, integer_periods, start))
    check_dates(ops, col, name, start is not None)
    if periodicity == "week":  # calendar.days_to_period: floor((days + 3) / 7), Monday 1969-12-29 is week 0
        days = ops.binary(ops.ticks(col), 1 if unit == "D" else TICKS_PER_DAY[unit], "FLOOR_DIV", ops.int64)
        return ops.binary(ops.binary(days, 3, "ADD", ops.int64), 7, "FLOOR_DIV", ops.int32)
    component = ops.plc.datetime.DatetimeComponent
    year = ops.plc.datetime.extract_datetime_component(col, component.YEAR)
    month = ops.plc.datetime.extract_datetime_component(col, component.MONTH)
    # year * 12 + month - 1 in int32 (the fields are int16)
    months = ops.binary(ops.cast(year, ops.int32), 12, "MUL", ops.int32)
    months = ops.binary(months, ops.cast(month, ops.int32), "ADD", ops.int32)
    months = ops.binary(months, 1, "SUB", ops.int32)
    per = {"month": 1, "quarter": 3, "year": 12}[periodicity]
    return months if per == 1 else ops.binary(months, per, "FLOOR_DIV", ops.int32)


def order_in_period(ops: Ops, col: Any, period: Any, file_type: pa.DataType | None = None) -> Any:
    """io.periods.order_within_period on the device: a timestamp's ticks (days for dates) as int64;
    other types and zoned timestamps on the host."""
    if _unit(col) is not None and not zoned(file_type):
        return ops.ticks(col)
    host = order_within_period(host_dates(col.to_arrow(), file_type), ops.to_host(period))
    return ops.from_host(np.asarray(host, dtype=np.int64))


def numeric(file_type: pa.DataType | None, col: Any) -> bool:
    """True for a column of numbers, by its type in the file where known, else by the column's."""
    kind = file_type if file_type is not None else col.type().to_arrow()
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind))


def group_codes(ops: Ops, col: Any) -> tuple[Any, np.ndarray] | None:
    """(int32 codes column, sorted labels on the host) of integer group ids without nulls, encoded
    on the device; None for other columns (strings, floats, nulls: encoded on the host by pandas'
    rules, as the host reader does)."""
    if col.null_count() or not col.type().id().name.startswith(("INT", "UINT")):
        return None
    codes, labels = ops.encode(col)
    if not (labels.dtype.kind == "u" and labels.size and int(labels.max()) >= 2**63):
        labels = labels.astype(np.int64)  # as the host's encode_groups (uint64 past int64 keeps its type)
    return codes, labels


def cell_table(ops: Ops, pairs: Pairs, strict: bool = False) -> CellTable:
    """data.tabulate.build_cell_table of pairs on the device without prices, by libcudf: the drop
    reasons of data.pairs.invalid_masks (each pair counted under the first it fails), the cell key,
    a group-by of the valid pairs' key with their count and sums of y and y^2; the table on the host
    (the solve runs there). No kernel is compiled for it."""
    group = None if pairs.group is None else ops.view(pairs.group)
    prev, recent, y = (ops.view(a) for a in (pairs.prev, pairs.recent, pairs.y))
    return columns_cell_table(ops, prev, recent, y, group, pairs.group_labels, pairs.n_periods, strict)


def columns_cell_table(
    ops: Ops, prev: Any, recent: Any, y: Any, group: Any, labels: np.ndarray, t: int, strict: bool = False
) -> CellTable:
    """cell_table of libcudf columns: prev, recent int32 periods in [0, t) where valid, y float64,
    group int32 codes (-1: missing) into labels, or None (labels ["ALL"])."""
    columns = {"group": group, "prev": prev, "recent": recent, "y": y}
    dropped: dict[str, int] = {}
    bad = None
    for rule in applicable(columns):
        test = functools.reduce(ops.either, (_holds(ops, columns, t, *c) for c in rule.any_of))
        count = ops.count(test if bad is None else ops.both(test, ops.negate(bad)))
        if count:
            dropped[rule.reason] = count
        bad = test if bad is None else ops.either(bad, test)
    if strict:
        check_strict(dropped)
    key = ops.cast(prev, ops.int64) if group is None else ops.binary(ops.cast(group, ops.int64), t, "MUL", ops.int64)
    if group is not None:
        key = ops.binary(key, prev, "ADD", ops.int64)
    key = ops.binary(ops.binary(key, t, "MUL", ops.int64), recent, "ADD", ops.int64)
    if dropped:
        key, y = ops.select([key, y], ops.negate(bad))
    keys, n, sum_y, sum_y2 = ops.sums_by_key(key, y)
    table = from_keys(np, t, labels, keys, n, {"y": sum_y, "y2": sum_y2})
    return replace(table, dropped=dropped)


_COMPARISON_OPS = {"<": "LESS", "<=": "LESS_EQUAL", ">": "GREATER", ">=": "GREATER_EQUAL", "==": "EQUAL"}


def _holds(ops: Ops, columns: dict[str, Any], t: int, column: str, op: str, operand: Any) -> Any:
    """A condition of data.rules as a bool column."""
    a = columns[column]
    if op == "nonfinite":  # a - a is 0 for a finite value, NaN for NaN and +-inf
        return ops.negate(ops.compare(ops.binary(a, a, "SUB", ops.float64), "EQUAL", 0.0))
    b = t if operand == "T" else columns[operand] if operand in COLUMNS else operand
    return ops.compare(a, _COMPARISON_OPS[op], b)


def build_table(pairs: Pairs, backend: Any, strict: bool = False, threads: int | None = None) -> CellTable:
    """The cell table of pairs: by libcudf where they are on the GPU without prices and pylibcudf is
    installed (cell_table: no kernel compiled; the table on the host), else by
    data.tabulate.build_cell_table (the table on the pairs' backend)."""
    plc = library() if backend.is_gpu and pairs.price_prev is None else None
    if plc is not None:
        return cell_table(Ops(plc), pairs, strict)
    return build_cell_table(pairs, backend, strict=strict, threads=threads)
