"""The device reader's boundary: parquet decoded on the GPU by pylibcudf (libcudf's reader), and
libcudf's operations on the columns, which ship compiled: a fresh machine compiles no kernel for
them (CuPy compiles each of its own on first use, seconds on a fresh machine). Columns reach CuPy
without a copy (`device_array`); what the readers compute with them is in io/device_columns.py.

The only module that imports pylibcudf; `Ops` names the few operations used, so that the readers
read as what they compute. The CPU tests run this code on a stand-in of pylibcudf's API over
pyarrow (tests/fake_pylibcudf.py); the GPU tests run it on pylibcudf against the host readers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import DataError
from .frames import arrow_table


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


def serves(backend: Any) -> bool:
    """Whether the device reader reads for this backend: a GPU, with pylibcudf importable."""
    return bool(backend.is_gpu) and library() is not None


@dataclass(frozen=True)
class DeviceFrame:
    """A cudf DataFrame's columns as pylibcudf columns, views of its device memory (cudf's
    Series.to_pylibcudf: no copy), read in row ranges as the device reader reads a parquet file's
    row groups."""

    columns: dict[str, Any]
    num_rows: int
    schema: pa.Schema  # the frame's Arrow types (a timestamp's zone, which libcudf's column lacks)
    owner: Any  # the cudf frame, alive while its columns are read


def frame_for(frame: Any, backend: Any, kind: str) -> DeviceFrame | pa.Table:
    """How a run reads a frame in memory (kind: pairs or transactions): a cudf frame as a
    DeviceFrame where the device readers serve the backend (the frame stays on the device); any
    other frame, or a cudf one elsewhere (through its to_arrow: a copy to the host), as a pyarrow
    Table."""
    if isinstance(frame, (DeviceFrame, pa.Table)):
        return frame
    if type(frame).__module__.split(".")[0] == "cudf" and kind in ("pairs", "transactions") and serves(backend):
        columns = {str(name): frame[name].to_pylibcudf()[0] for name in frame.columns}
        return DeviceFrame(columns, len(frame), frame.head(0).to_arrow().schema, frame)
    return arrow_table(frame)


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

    def slice(self, cols: list[Any], start: int, stop: int) -> list[Any]:
        """Rows [start, stop) of the columns: views of them, no copy."""
        (part,) = self.plc.copying.slice(self.plc.Table(cols), [start, stop])
        return part.columns()

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
