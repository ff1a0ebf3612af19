"""A stand-in for the part of pylibcudf's API that gpu_hpi.io.device uses, over pyarrow arrays on
the host, so that the CPU tests run the device readers' own code. It follows libcudf's documented
semantics where they matter to the readers: nulls propagate through arithmetic and comparisons
(NULL_EQUALS: a null equals only a null), FLOOR_DIV floors, a boolean mask keeps the rows where it is
true and valid, stable sorts keep row order, encode gives codes into the sorted distinct rows, and
parquet is read as libcudf reads it (dictionaries decoded, a timestamp's zone dropped: its UTC
instants). tests/gpu/ runs the same readers on pylibcudf itself.
"""

from __future__ import annotations

import enum
import types
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


class TypeId(enum.IntEnum):
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT32 = 9
    FLOAT64 = 10
    BOOL8 = 11
    TIMESTAMP_DAYS = 12
    TIMESTAMP_SECONDS = 13
    TIMESTAMP_MILLISECONDS = 14
    TIMESTAMP_MICROSECONDS = 15
    TIMESTAMP_NANOSECONDS = 16
    STRING = 23
    DECIMAL128 = 27


_ARROW = {
    TypeId.INT8: pa.int8(),
    TypeId.INT16: pa.int16(),
    TypeId.INT32: pa.int32(),
    TypeId.INT64: pa.int64(),
    TypeId.UINT8: pa.uint8(),
    TypeId.UINT16: pa.uint16(),
    TypeId.UINT32: pa.uint32(),
    TypeId.UINT64: pa.uint64(),
    TypeId.FLOAT32: pa.float32(),
    TypeId.FLOAT64: pa.float64(),
    TypeId.BOOL8: pa.bool_(),
    TypeId.TIMESTAMP_DAYS: pa.date32(),
    TypeId.TIMESTAMP_SECONDS: pa.timestamp("s"),
    TypeId.TIMESTAMP_MILLISECONDS: pa.timestamp("ms"),
    TypeId.TIMESTAMP_MICROSECONDS: pa.timestamp("us"),
    TypeId.TIMESTAMP_NANOSECONDS: pa.timestamp("ns"),
    TypeId.STRING: pa.string(),
}


class DataType:
    def __init__(self, type_id: TypeId, scale: int = 0, arrow: pa.DataType | None = None) -> None:
        self._id, self._arrow = type_id, arrow if arrow is not None else _ARROW[type_id]

    def id(self) -> TypeId:
        return self._id

    def to_arrow(self) -> pa.DataType:
        return self._arrow

    @staticmethod
    def of(kind: pa.DataType) -> DataType:
        if pa.types.is_decimal(kind):
            return DataType(TypeId.DECIMAL128, arrow=kind)
        for tid, arrow in _ARROW.items():
            if arrow == kind:
                return DataType(tid)
        raise TypeError(f"no pylibcudf type for {kind}")


def _libcudf_form(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An Arrow array as libcudf holds it: one chunk, dictionaries decoded, large strings as strings,
    a zoned timestamp as its UTC instants without the zone, date64 as milliseconds."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    kind = arr.type
    if pa.types.is_dictionary(kind):
        return _libcudf_form(arr.dictionary_decode())
    if pa.types.is_large_string(kind):
        return arr.cast(pa.string())
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return arr.cast(pa.int64()).cast(pa.timestamp(kind.unit))
    if pa.types.is_date64(kind):
        return arr.cast(pa.timestamp("ms"))
    return arr


class Column:
    def __init__(self, arr: pa.Array) -> None:
        self.arr = _libcudf_form(arr)

    def type(self) -> DataType:
        return DataType.of(self.arr.type)

    def size(self) -> int:
        return len(self.arr)

    def null_count(self) -> int:
        return self.arr.null_count

    def offset(self) -> int:
        return 0

    def to_arrow(self) -> pa.Array:
        return self.arr

    @staticmethod
    def from_arrow(arr: pa.Array) -> Column:
        return Column(arr)

    @staticmethod
    def from_cuda_array_interface(array: np.ndarray) -> Column:
        if array.ndim != 1 or not array.flags.c_contiguous:
            raise ValueError("Data must be C-contiguous")  # as pylibcudf
        return Column(pa.array(np.asarray(array)))  # numpy stands in for CuPy

    @staticmethod
    def from_scalar(scalar: Scalar, size: int) -> Column:
        return Column(pa.array([scalar.value.as_py()] * size, scalar.value.type))


class Scalar:
    def __init__(self, value: pa.Scalar) -> None:
        self.value = value

    @staticmethod
    def from_arrow(value: pa.Scalar) -> Scalar:
        return Scalar(value)

    @staticmethod
    def empty_like(col: Column) -> Scalar:
        return Scalar(pa.scalar(None, col.arr.type))

    def to_py(self) -> Any:
        return self.value.as_py()


class Table:
    def __init__(self, columns: list[Column]) -> None:
        self._columns = list(columns)

    def columns(self) -> list[Column]:
        return list(self._columns)

    def num_rows(self) -> int:
        return self._columns[0].size() if self._columns else 0


def _values(x: Column | Scalar, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid mask) of a column or a broadcast scalar; timestamps as their integer ticks."""
    if isinstance(x, Scalar):
        v = x.value
        value = v.cast(pa.int64()).as_py() if pa.types.is_temporal(v.type) and v.is_valid else v.as_py()
        return np.full(n, value if v.is_valid else 0), np.full(n, v.is_valid)
    arr = x.arr
    if pa.types.is_temporal(arr.type):
        arr = arr.cast(pa.int32() if pa.types.is_date32(arr.type) else pa.int64())
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    filler = "" if pa.types.is_string(arr.type) else (False if pa.types.is_boolean(arr.type) else 0)
    return np.asarray(arr.fill_null(filler).to_numpy(zero_copy_only=False)), valid


def _column(values: np.ndarray, valid: np.ndarray, kind: DataType) -> Column:
    arrow = kind.to_arrow()
    if pa.types.is_integer(arrow):
        values = values.astype(arrow.to_pandas_dtype())  # wraps as C does
    return Column(pa.array(values, type=arrow, mask=~valid))


def _binary(lhs: Any, rhs: Any, op: Any, out: DataType) -> Column:
    n = lhs.size() if isinstance(lhs, Column) else rhs.size()
    a, va = _values(lhs, n)
    b, vb = _values(rhs, n)
    name = op.name
    valid = va & vb
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if name == "NULL_EQUALS":
            return _column(np.where(va & vb, a == b, ~va & ~vb), np.ones(n, bool), out)
        if name in ("ADD", "SUB", "MUL"):
            fn = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply}[name]
            floats = a.dtype.kind == "f" or b.dtype.kind == "f" or pa.types.is_floating(out.to_arrow())
            result = (
                fn(a.astype(np.float64), b.astype(np.float64)) if floats else fn(a.astype(np.int64), b.astype(np.int64))
            )
        elif name == "TRUE_DIV":
            result = a.astype(np.float64) / b.astype(np.float64)
        elif name == "FLOOR_DIV":
            result = np.floor_divide(a.astype(np.int64), np.where(vb, b, 1).astype(np.int64))
        elif name in ("LOGICAL_AND", "LOGICAL_OR"):
            result = (a.astype(bool) & b.astype(bool)) if name == "LOGICAL_AND" else (a.astype(bool) | b.astype(bool))
        else:
            result = {
                "EQUAL": np.equal,
                "NOT_EQUAL": np.not_equal,
                "LESS": np.less,
                "GREATER": np.greater,
                "LESS_EQUAL": np.less_equal,
                "GREATER_EQUAL": np.greater_equal,
            }[name](a, b)
    return _column(result, valid, out)


BinaryOperator = enum.Enum(
    "BinaryOperator",
    "ADD SUB MUL TRUE_DIV FLOOR_DIV LOGICAL_AND LOGICAL_OR EQUAL NOT_EQUAL LESS GREATER LESS_EQUAL GREATER_EQUAL "
    "NULL_EQUALS",
)
UnaryOperator = enum.Enum("UnaryOperator", "NOT ABS LOG")


def _unary(col: Column, op: Any) -> Column:
    arr = col.arr
    with np.errstate(divide="ignore", invalid="ignore"):
        if op.name == "NOT":
            return Column(pc.invert(arr))
        if op.name == "ABS":
            return Column(pc.abs(arr))
        values, valid = _values(col, col.size())
        return _column(np.log(values.astype(np.float64)), valid, DataType(TypeId.FLOAT64))


def _cast(col: Column, kind: DataType) -> Column:
    return Column(col.arr.cast(kind.to_arrow()))


def _bit_cast(col: Column, kind: DataType) -> Column:
    if col.arr.type.bit_width != kind.to_arrow().bit_width:
        raise TypeError("bit_cast: the types must have one width")  # libcudf's rule
    return Column(col.arr.cast(kind.to_arrow()))  # the ticks of a timestamp, days of a date


def _is_nan(col: Column) -> Column:
    return Column(pc.fill_null(pc.is_nan(col.arr), False))


DatetimeComponent = enum.Enum("DatetimeComponent", "YEAR MONTH")


def _component(col: Column, component: Any) -> Column:
    fn = pc.year if component.name == "YEAR" else pc.month
    return Column(fn(col.arr).cast(pa.int16()))


def _reduce(col: Column, agg: Any, out: DataType) -> Scalar:
    return Scalar(pa.scalar(pc.sum(col.arr.cast(pa.int64())).as_py() or 0, out.to_arrow()))


def _minmax(col: Column) -> tuple[Scalar, Scalar]:
    extremes = pc.min_max(col.arr)
    return Scalar(extremes["min"]), Scalar(extremes["max"])


def _select(table: Table, mask: Column) -> Table:
    keep = pc.fill_null(mask.arr, False)
    return Table([Column(c.arr.filter(keep)) for c in table.columns()])


def _gather(table: Table, rows: Column, policy: Any) -> Table:
    return Table([Column(c.arr.take(rows.arr)) for c in table.columns()])


def _shift(col: Column, offset: int, fill: Scalar) -> Column:
    if fill.value.type != col.arr.type:
        raise TypeError("shift: the fill value must have the column's type")  # libcudf's rule
    n = col.size()
    fills = pa.array([fill.value.as_py()] * min(abs(offset), n), col.arr.type)
    parts = [fills, col.arr.slice(0, max(n - offset, 0))] if offset >= 0 else [col.arr.slice(-offset), fills]
    return Column(pa.concat_arrays(parts))


def _copy_if_else(lhs: Any, rhs: Any, mask: Column) -> Column:
    kinds = {x.arr.type if isinstance(x, Column) else x.value.type for x in (lhs, rhs)}
    if len(kinds) > 1:
        raise TypeError(f"copy_if_else: both sides must have one type, got {kinds}")  # libcudf's rule
    n = mask.size()
    a, va = _values(lhs, n)
    b, vb = _values(rhs, n)
    m = np.asarray(pc.fill_null(mask.arr, False).to_numpy(zero_copy_only=False), dtype=bool)
    kind = lhs.type() if isinstance(lhs, Column) else DataType.of(lhs.value.type)
    return _column(np.where(m, a, b), np.where(m, va, vb), kind)


def _sort_keys(table: Table) -> list[np.ndarray]:
    keys = []
    for col in table.columns():
        values, valid = _values(col, col.size())
        keys.append(np.where(valid, values, np.max(values, initial=0)) if values.dtype.kind != "O" else values)
    return keys


def _stable_sorted_order(table: Table, orders: list[Any], nulls: list[Any]) -> Column:
    keys = _sort_keys(table)
    order = np.lexsort(keys[::-1]) if keys and keys[0].size else np.zeros(0, np.int64)
    return Column(pa.array(order.astype(np.int32)))


def _encode(table: Table) -> tuple[Table, Column]:
    ranks = []
    for col in table.columns():
        _, inverse = np.unique(col.arr.to_numpy(zero_copy_only=False), return_inverse=True)
        ranks.append(inverse.reshape(-1))
    stacked = np.stack(ranks, axis=1) if ranks else np.zeros((0, 0), np.int64)
    _, first, codes = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    distinct = Table([Column(c.arr.take(pa.array(first))) for c in table.columns()])
    return distinct, Column(pa.array(codes.reshape(-1).astype(np.int32)))


def _lower_bound(haystack: Table, needles: Table, orders: list[Any], nulls: list[Any]) -> Column:
    if [c.arr.type for c in haystack.columns()] != [c.arr.type for c in needles.columns()]:
        raise TypeError("lower_bound: haystack and needles must have the same types")  # libcudf's rule
    (hay,), (needle,) = (_sort_keys(t) for t in (haystack, needles))
    return Column(pa.array(np.searchsorted(hay, needle, side="left").astype(np.int32)))


def _concatenate(cols: list[Column]) -> Column:
    return Column(pa.concat_arrays([c.arr for c in cols]))


def _sequence(n: int, init: Scalar, step: Scalar) -> Column:
    return Column(pa.array(np.arange(n, dtype=np.int32) * step.to_py() + init.to_py(), pa.int32()))


def _replace_nulls(col: Column, value: Scalar) -> Column:
    return Column(pc.fill_null(col.arr, value.value))


class _GroupByRequest:
    def __init__(self, values: Column, aggregations: list[str]) -> None:
        self.values, self.aggregations = values, aggregations


class _GroupBy:
    """A hash group-by: groups in no particular order (here, their first appearance)."""

    def __init__(self, keys: Table) -> None:
        self.keys = keys

    def aggregate(self, requests: list[_GroupByRequest]) -> tuple[Table, list[Table]]:
        (key,) = self.keys.columns()
        codes, uniques = pd.factorize(key.arr.to_numpy(zero_copy_only=False))
        n = len(uniques)
        results = []
        for request in requests:
            values = request.values.arr.to_numpy(zero_copy_only=False).astype(np.float64)
            out = {
                "count": np.bincount(codes, minlength=n).astype(np.int32),
                "sum": np.bincount(codes, weights=values, minlength=n),
                "sum_of_squares": np.bincount(codes, weights=values * values, minlength=n),
            }
            results.append(Table([Column(pa.array(out[a])) for a in request.aggregations]))
        return Table([Column(pa.array(uniques, key.arr.type))]), results


class _Options:
    def __init__(self, path: str) -> None:
        self.path, self.names, self.row_groups = path, None, None

    def column_names(self, names: list[str]) -> _Options:
        self.names = names
        return self

    def build(self) -> _Options:
        return self

    def set_row_groups(self, row_groups: list[list[int]]) -> None:
        self.row_groups = row_groups[0]


class _Read:
    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def column_names(self) -> list[str]:
        return list(self.table.column_names)

    @property
    def columns(self) -> list[Column]:
        return [Column(c) for c in self.table.columns]


def _read_parquet(options: _Options) -> _Read:
    f = pq.ParquetFile(options.path)
    if options.row_groups is not None:
        return _Read(f.read_row_groups(options.row_groups, columns=options.names))
    return _Read(f.read(columns=options.names))


def _slice(table: Table, bounds: list[int]) -> list[Table]:
    """copying.slice of a table: a table of the rows [bounds[2k], bounds[2k + 1]) for each k."""
    pairs = zip(bounds[::2], bounds[1::2], strict=True)
    return [Table([Column(c.arr.slice(a, b - a)) for c in table.columns()]) for a, b in pairs]


def _namespace(**members: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(**members)


plc = _namespace(
    TypeId=TypeId,
    DataType=DataType,
    Column=Column,
    Scalar=Scalar,
    Table=Table,
    binaryop=_namespace(BinaryOperator=BinaryOperator, binary_operation=_binary),
    unary=_namespace(
        UnaryOperator=UnaryOperator,
        unary_operation=_unary,
        cast=_cast,
        bit_cast=_bit_cast,
        is_null=lambda col: Column(col.arr.is_null()),
        is_nan=_is_nan,
    ),
    datetime=_namespace(DatetimeComponent=DatetimeComponent, extract_datetime_component=_component),
    aggregation=_namespace(sum=lambda: "sum", count=lambda: "count", sum_of_squares=lambda: "sum_of_squares"),
    groupby=_namespace(GroupBy=_GroupBy, GroupByRequest=_GroupByRequest),
    reduce=_namespace(reduce=_reduce, minmax=_minmax),
    stream_compaction=_namespace(apply_retention_mask=_select),
    copying=_namespace(
        OutOfBoundsPolicy=enum.Enum("OutOfBoundsPolicy", "DONT_CHECK NULLIFY"),
        gather=_gather,
        shift=_shift,
        copy_if_else=_copy_if_else,
        slice=_slice,
    ),
    sorting=_namespace(stable_sorted_order=_stable_sorted_order),
    types=_namespace(
        Order=enum.Enum("Order", "ASCENDING DESCENDING"), NullOrder=enum.Enum("NullOrder", "AFTER BEFORE")
    ),
    transform=_namespace(encode=_encode),
    search=_namespace(lower_bound=_lower_bound),
    concatenate=_namespace(concatenate=_concatenate),
    filling=_namespace(sequence=_sequence),
    replace=_namespace(replace_nulls=_replace_nulls),
    io=_namespace(
        SourceInfo=lambda paths: paths[0],
        parquet=_namespace(
            ParquetReaderOptions=_namespace(builder=_Options),
            read_parquet=_read_parquet,
        ),
    ),
)


def host_array(col: Column) -> np.ndarray:
    """io.device.device_array's stand-in: the column's values as numpy (no nulls)."""
    return np.asarray(col.arr.to_numpy(zero_copy_only=False))


def no_array(col: Any) -> Any:
    """In place of gpu_hpi.io.device.device_array where no array may be made of a device column."""
    raise AssertionError("an array was made of a device column")
