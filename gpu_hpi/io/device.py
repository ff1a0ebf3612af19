"""The device reader: parquet decoded on the GPU by pylibcudf (libcudf's reader), and the columns'
arithmetic (periods, validity, group codes, sorting, neighbours) done by libcudf's operations,
which ship compiled: a fresh machine compiles no kernel for them (CuPy compiles each of its own on
first use, seconds on a fresh machine). Columns reach CuPy without a copy (`device_array`).

The only module that imports pylibcudf; `Ops` names the few operations used, so that the readers
read as what they compute. The CPU tests run this code on a stand-in of pylibcudf's API over
pyarrow (tests/fake_pylibcudf.py); the GPU tests run it on pylibcudf against the host readers.
"""

from __future__ import annotations

import functools
import os
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from ..data.cells import CellTable, build_cell_table, from_keys
from ..data.pairs import Pairs, check_strict
from ..data.rules import COLUMNS, applicable
from ..errors import DataError
from .periods import (
    TICKS_PER_DAY,
    check_plausible_days,
    column_periods,
    host_dates,
    order_within_period,
    zoned,
)


def library() -> Any:
    """pylibcudf, or None where it cannot be imported or GPU_HPI_CUDF=0 asks for the host reader
    (pyarrow decoding on the host, CuPy after the copy)."""
    if os.environ.get("GPU_HPI_CUDF", "1") == "0":
        return None
    try:
        import pylibcudf
    except Exception:  # ImportError, or a CUDA runtime problem raised at import
        return None
    return pylibcudf


def device_array(col: Any) -> Any:
    """A fixed-width column without nulls as a CuPy array over its device buffer (no copy; the
    array keeps the column alive)."""
    import cupy

    dtype = np.dtype(col.type().to_arrow().to_pandas_dtype())
    n = col.size()
    if n == 0:
        return cupy.empty(0, dtype=dtype)
    ptr = col.data().ptr + col.offset() * dtype.itemsize
    memory = cupy.cuda.UnownedMemory(ptr, n * dtype.itemsize, col)
    return cupy.ndarray((n,), dtype=dtype, memptr=cupy.cuda.MemoryPointer(memory, 0))


class Ops:
    """pylibcudf's operations under short names: columns in, columns out, on the device."""

    def __init__(self, plc: Any) -> None:
        self.plc = plc
        t = plc.TypeId
        self.int32, self.int64 = plc.DataType(t.INT32), plc.DataType(t.INT64)
        self.float64, self.bool8 = plc.DataType(t.FLOAT64), plc.DataType(t.BOOL8)
        self.op = plc.binaryop.BinaryOperator

    # reading and moving

    def read_parquet(self, path: str, names: list[str], row_groups: list[int] | None = None) -> dict[str, Any]:
        """The named columns of a parquet file (of these row groups only, where given)."""
        plc = self.plc
        builder = plc.io.parquet.ParquetReaderOptions.builder(plc.io.SourceInfo([path]))
        select = getattr(builder, "column_names", None) or builder.columns  # `columns` is deprecated
        options = select(names).build()
        if row_groups is not None:
            options.set_row_groups([row_groups])
        try:
            read = plc.io.parquet.read_parquet(options)
        except Exception as exc:  # libcudf raises RuntimeError / OSError / ValueError variants
            raise DataError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
        return dict(zip(read.column_names(), read.columns, strict=True))

    def from_host(self, values: np.ndarray | pa.Array) -> Any:
        return self.plc.Column.from_arrow(values if isinstance(values, pa.Array) else pa.array(values))

    def to_host(self, col: Any) -> np.ndarray:
        return np.asarray(col.to_arrow().to_numpy(zero_copy_only=False))

    # elementwise

    def scalar(self, value: Any, kind: pa.DataType) -> Any:
        return self.plc.Scalar.from_arrow(pa.scalar(value, type=kind))

    def binary(self, a: Any, b: Any, op: str, out: Any) -> Any:
        """a op b (columns, or a Python number for b, taken as out's type)."""
        if not isinstance(b, type(a)):
            b = self.scalar(b, out.to_arrow() if op not in _COMPARISONS else a.type().to_arrow())
        return self.plc.binaryop.binary_operation(a, b, getattr(self.op, op), out)

    def compare(self, a: Any, op: str, b: Any) -> Any:
        """a op b as a bool column: op EQUAL, LESS, GREATER, ..., NULL_EQUALS (a null equals only
        a null, where EQUAL gives null)."""
        return self.binary(a, b, op, self.bool8)

    def both(self, a: Any, b: Any) -> Any:
        return self.binary(a, b, "LOGICAL_AND", self.bool8)

    def either(self, a: Any, b: Any) -> Any:
        return self.binary(a, b, "LOGICAL_OR", self.bool8)

    def negate(self, a: Any) -> Any:
        return self.unary(a, "NOT")

    def unary(self, a: Any, op: str) -> Any:
        return self.plc.unary.unary_operation(a, getattr(self.plc.unary.UnaryOperator, op))

    def cast(self, a: Any, kind: Any) -> Any:
        return a if a.type().id() == kind.id() else self.plc.unary.cast(a, kind)

    def ticks(self, a: Any) -> Any:
        """A timestamp column's integer ticks (days for dates), as int64."""
        width = self.int32 if a.type().id() == self.plc.TypeId.TIMESTAMP_DAYS else self.int64
        return self.cast(self.plc.unary.bit_cast(a, width), self.int64)

    def is_null(self, a: Any) -> Any:
        return self.plc.unary.is_null(a)

    def is_nan(self, a: Any) -> Any:
        return self.plc.unary.is_nan(a)

    def nan_for_null(self, a: Any) -> Any:
        """A float64 column with NaN where it is null."""
        a = self.cast(a, self.float64)
        return self.plc.replace.replace_nulls(a, self.scalar(float("nan"), pa.float64())) if a.null_count() else a

    def fill_null(self, a: Any, value: Any) -> Any:
        return self.plc.replace.replace_nulls(a, self.scalar(value, a.type().to_arrow()))

    def where(self, mask: Any, a: Any, b: Any) -> Any:
        """a where mask, else b (a column or scalar each)."""
        return self.plc.copying.copy_if_else(a, b, mask)

    # reductions

    def count(self, mask: Any) -> int:
        """True values of a bool column."""
        if mask.size() == 0:
            return 0
        ones = self.cast(mask, self.int32)  # summed as integers: a sum over bools is not every libcudf's
        return int(self.plc.reduce.reduce(ones, self.plc.aggregation.sum(), self.int64).to_py() or 0)

    def minmax(self, a: Any) -> tuple[int, int] | None:
        """(min, max) of an integer column, None where it has no value."""
        if a.size() == a.null_count():
            return None
        lo, hi = self.plc.reduce.minmax(a)
        return int(lo.to_py()), int(hi.to_py())

    # rows

    def select(self, cols: list[Any], mask: Any) -> list[Any]:
        """The rows where mask is true (and not null)."""
        compaction = self.plc.stream_compaction
        keep = getattr(compaction, "apply_retention_mask", None) or compaction.apply_boolean_mask
        return list(keep(self.plc.Table(cols), mask).columns())

    def gather(self, cols: list[Any], rows: Any) -> list[Any]:
        policy = self.plc.copying.OutOfBoundsPolicy.DONT_CHECK
        return list(self.plc.copying.gather(self.plc.Table(cols), rows, policy).columns())

    def next_value(self, a: Any, distance: int = 1) -> Any:
        """a[k + distance] at row k of a column of non-negative integers, -1 past the end."""
        return self.plc.copying.shift(a, -distance, self.scalar(-1, a.type().to_arrow()))

    def stable_order(self, keys: list[Any]) -> Any:
        """The permutation sorting the rows by the keys, ascending, ties in row order."""
        n = len(keys)
        return self.plc.sorting.stable_sorted_order(
            self.plc.Table(keys), [self.plc.types.Order.ASCENDING] * n, [self.plc.types.NullOrder.AFTER] * n
        )

    def encode(self, a: Any) -> tuple[Any, np.ndarray]:
        """(int32 codes, sorted distinct values on the host) of a column without nulls."""
        values, codes = self.plc.transform.encode(self.plc.Table([a]))
        return codes, self.to_host(values.columns()[0])

    def encode_rows(self, cols: list[Any]) -> Any:
        """int32 codes of the rows of columns without nulls: equal rows, equal codes."""
        return self.plc.transform.encode(self.plc.Table(cols))[1]

    def bounds(self, sorted_codes: Any, n: int) -> np.ndarray:
        """(n + 1,) host positions where codes 0..n start in an ascending int32 column."""
        order = [self.plc.types.Order.ASCENDING]
        nulls = [self.plc.types.NullOrder.AFTER]
        table, needles = self.plc.Table([sorted_codes]), self.plc.Table([self.sequence(n + 1)])
        return self.to_host(self.plc.search.lower_bound(table, needles, order, nulls)).astype(np.int64)

    def full(self, n: int, value: Any, kind: pa.DataType) -> Any:
        return self.plc.Column.from_scalar(self.scalar(value, kind), n)

    def view(self, array: Any) -> Any:
        """A CuPy array as a column over the same device memory (no copy)."""
        return self.plc.Column.from_cuda_array_interface(array)

    def sums_by_key(self, key: Any, values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keys, counts, sums, sums of squares) of the values of each distinct key, sorted by key,
        on the host: a hash group-by on the device, then a sort of its few rows there."""
        plc = self.plc
        aggs = plc.aggregation
        request = plc.groupby.GroupByRequest(values, [aggs.count(), aggs.sum(), aggs.sum_of_squares()])
        grouped, (results,) = plc.groupby.GroupBy(plc.Table([key])).aggregate([request])
        (keys,) = grouped.columns()
        keys, count, total, squares = self.gather([keys, *results.columns()], self.stable_order([keys]))
        return self.to_host(keys), self.to_host(count).astype(np.int64), self.to_host(total), self.to_host(squares)

    def concatenate(self, cols: list[Any]) -> Any:
        return cols[0] if len(cols) == 1 else self.plc.concatenate.concatenate(cols)

    def sequence(self, n: int) -> Any:
        return self.plc.filling.sequence(n, self.scalar(0, pa.int32()), self.scalar(1, pa.int32()))


_COMPARISONS = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER", "LESS_EQUAL", "GREATER_EQUAL", "NULL_EQUALS"}
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


def check_dates(ops: Ops, col: Any, name: str) -> None:
    """DataError unless the dates of a timestamp column lie in PLAUSIBLE_YEARS (from its extreme
    ticks, before any calendar arithmetic that would wrap them)."""
    unit = _unit(col)
    extremes = None if unit is None else ops.minmax(ops.ticks(col))
    if unit is not None and extremes is not None:
        per_day = 1 if unit == "D" else TICKS_PER_DAY[unit]
        check_plausible_days(name, extremes[0] // per_day, extremes[1] // per_day)


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
    check_dates(ops, col, name)
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
    """data.cells.build_cell_table of pairs on the device without prices, by libcudf: the drop
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
    data.cells.build_cell_table (the table on the pairs' backend)."""
    plc = library() if backend.is_gpu and pairs.price_prev is None else None
    if plc is not None:
        return cell_table(Ops(plc), pairs, strict)
    return build_cell_table(pairs, backend, strict=strict, threads=threads)
