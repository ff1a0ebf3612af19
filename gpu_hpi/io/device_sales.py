"""Sale records on the device: read by libcudf and paired by its operations (sort, neighbour
comparisons, selections, gathers), the rules of data/pairing.py in the same order and with the
same floating-point operations, so that a fresh machine compiles no kernel for them. The pairs reach
CuPy without a copy. They are the pairs and counts of make_pairs, ordered as the DuckDB path orders
them (properties by their key's value; make_pairs, by first appearance). tests/unit/io/
test_device_sales.py runs this on a stand-in of pylibcudf against make_pairs; the GPU tests run it
on pylibcudf."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ..backend.core import resolve_backend
from ..data.pair_filters import PairingRules
from ..data.pairing import SalePairs
from ..data.pairs import encode_groups
from ..data.rules import MAX_PRICE, add_counts
from ..errors import DataError
from . import device, device_columns
from ._sale_batches import trace_table
from .columns import group_values
from .device_filters import filter_pairs
from .files import check_columns, parquet_file
from .frames import FRAME, check_frame_columns


@dataclass(frozen=True)
class DeviceSales:
    """Dated sales with a property key, as device columns: key: int32 codes of the (composite)
    key; period: int32 absolute periods; order: int64 time within the period; price: float64 (NaN
    where null); group: int32 codes into group_labels (-1: missing) or None. n_sales: rows read;
    n_missing_date and dropped: the sales left out so far, by reason."""

    key: Any
    period: Any
    order: Any
    price: Any
    group: Any
    group_labels: np.ndarray
    n_sales: int
    n_missing_date: int
    dropped: dict[str, int]
    trace: DeviceTrace | None = None

    @property
    def n_usable(self) -> int:
        return int(self.key.size())


@dataclass(frozen=True)
class DeviceTrace:
    """Where each sale came from (SaleSource.trace), device columns aligned with DeviceSales':
    keys, the property key's columns as read; date, the date column as read; file: int32 indices
    into files; row: int64 rows within the file (0-based, across row groups); types: the files'
    types (name -> pyarrow type), which the host table keeps."""

    keys: list[Any]
    names: list[str]
    date_name: str
    date: Any
    file: Any
    row: Any
    files: list[str]
    types: dict[str, pa.DataType] = field(default_factory=dict)

    def of_pairs(self, ops: device.Ops, prev: Any, recent: Any) -> pa.Table:
        """The host trace table (_sale_batches.trace_table) of the pairs whose sales are at the
        rows prev and recent (int32 columns)."""
        *keys, date_recent, file_recent, row_recent = ops.gather([*self.keys, self.date, self.file, self.row], recent)
        date_prev, file_prev, row_prev = ops.gather([self.date, self.file, self.row], prev)
        return trace_table(
            {name: col.to_arrow() for name, col in zip(self.names, keys, strict=True)},
            self.date_name,
            (date_prev.to_arrow(), date_recent.to_arrow()),
            (ops.to_host(file_prev), ops.to_host(row_prev)),
            (ops.to_host(file_recent), ops.to_host(row_recent)),
            self.files,
            self.types,
        )


def read_sales(ops: device.Ops, files: list[str], source: Any) -> DeviceSales:
    """Every sale of the parquet files (a SaleSource's columns and rules), as the host reader
    (io.sales.SaleSource.read) reads them: the dated sales' periods first (a date that cannot be
    one is refused even on a sale without a key), then the sales without a whole key dropped."""
    names = source.columns()
    parts: list[dict[str, Any]] = []
    schema = None
    for path in files:
        schema = parquet_file(path).schema_arrow
        check_columns(schema.names, names, [path])
        parts.append(ops.read_parquet(path, names))
    assert schema is not None
    return sales_of_columns(ops, parts, schema, files, source)


def frame_sales(ops: device.Ops, frame: device.DeviceFrame, source: Any) -> DeviceSales:
    """Every sale of a cudf frame's columns on the device, as read_sales reads a file's."""
    names = source.columns()
    check_frame_columns(list(frame.columns), names)
    return sales_of_columns(ops, [{name: frame.columns[name] for name in names}], frame.schema, [FRAME], source)


def sales_of_columns(
    ops: device.Ops, parts: list[dict[str, Any]], schema: pa.Schema, files: list[str], source: Any
) -> DeviceSales:
    """read_sales from the device columns of each file (parts, their Arrow types in schema)."""
    names = source.columns()
    cols = {name: ops.concatenate([p[name] for p in parts]) for name in names}
    # traced: each sale's file and row within it (the rows of a file as read, in order)
    sources = _sources(ops, [p[source.date].size() for p in parts]) if source.trace else []
    n_sales = cols[source.date].size()
    undated = device_columns.missing_periods(ops, cols[source.date])
    if undated is not None:
        dated = ops.select([*cols.values(), *sources], ops.negate(undated))
        cols, sources = dict(zip(cols, dated[: len(cols)], strict=True)), dated[len(cols) :]
    n_dated = cols[source.date].size()
    price_type = schema.field(source.price).type
    if not device_columns.numeric(price_type, cols[source.price]):
        raise DataError(f"column {source.price!r} of {source.path} must be numeric, got {price_type}")
    date_type = schema.field(source.date).type
    period = device_columns.periods(
        ops, cols[source.date], source.date, source.periodicity, source.integer_periods, source.start, date_type
    )
    order = device_columns.order_in_period(ops, cols[source.date], period, date_type)
    missing = None
    for name in source.property:  # a missing key part: null, or NaN as in pandas' factorize
        part = ops.is_null(cols[name])
        if pa.types.is_floating(schema.field(name).type):
            part = ops.either(part, ops.fill_null(ops.is_nan(cols[name]), False))
        missing = part if missing is None else ops.either(missing, part)
    assert missing is not None
    n_unkeyed = ops.count(missing)
    rest = [*(cols[name] for name in source.property), period, order, cols[source.price]]
    group_col = cols[source.group] if source.group else None
    traced = [cols[source.date], *sources] if sources else []
    if n_unkeyed:
        kept = ops.select([*rest, *traced, *([group_col] if group_col is not None else [])], ops.negate(missing))
        group_col = kept.pop() if group_col is not None else None
        rest, traced = kept[: len(rest)], kept[len(rest) :]
    *keys, period, order, price = rest
    key = ops.encode_rows(keys)
    group, labels = _group_codes(ops, group_col)
    trace = None
    if sources:
        named = [*source.property, source.date]
        types = {name: schema.field(name).type for name in named}
        date_col, file_col, row_col = traced
        trace = DeviceTrace(keys, list(source.property), source.date, date_col, file_col, row_col, files, types)
    return DeviceSales(
        key,
        period,
        order,
        ops.nan_for_null(price),
        group,
        labels,
        n_sales,
        n_sales - n_dated,
        {"sale_missing_property": n_unkeyed} if n_unkeyed else {},
        trace,
    )


def _sources(ops: device.Ops, sizes: list[int]) -> list[Any]:
    """[file, row] columns of files of these sizes read one after the other: int32 file indices,
    int64 rows within each file."""
    files = ops.concatenate([ops.full(n, k, pa.int32()) for k, n in enumerate(sizes)])
    rows = ops.concatenate([ops.cast(ops.sequence(n), ops.int64) for n in sizes])
    return [files, rows]


def _group_codes(ops: device.Ops, col: Any) -> tuple[Any, np.ndarray]:
    """(int32 codes column or None, sorted labels): integers encoded on the device, other ids
    (strings, floats, nulls) by the host's rules (data.pairs.encode_groups)."""
    if col is None:
        return None, np.asarray(["ALL"], dtype=object)
    encoded = device_columns.group_codes(ops, col)
    if encoded is not None:
        return encoded
    codes, labels = encode_groups(resolve_backend("cpu"), group_values(col.to_arrow()))
    return ops.from_host(np.asarray(codes, dtype=np.int32)), labels


def pair_sales(ops: device.Ops, sales: DeviceSales, rules: PairingRules, first: int, n_periods: int) -> SalePairs:
    """data.pairing.make_pairs of the sales, periods counted from the absolute period `first` in a
    window of n_periods: the same rules, counts and pairs (properties in their key's order)."""
    dropped: dict[str, int] = {}

    def drop(reason: str, bad: Any) -> None:
        count = ops.count(bad)
        if count:
            dropped[reason] = dropped.get(reason, 0) + count

    period = ops.binary(sales.period, first, "SUB", ops.int32) if first else sales.period
    price = sales.price
    # positive, and a price a house may have (data.rules.MAX_PRICE): NaN fails both comparisons
    good_price = ops.both(ops.compare(price, "GREATER", 0.0), ops.compare(price, "LESS_EQUAL", MAX_PRICE))
    inside = ops.both(ops.compare(period, "GREATER_EQUAL", 0), ops.compare(period, "LESS", n_periods))
    drop("sale_invalid_price", ops.negate(good_price))
    drop("sale_outside_window", ops.both(good_price, ops.negate(inside)))
    # traced: each sale's position in `sales`, carried through the selections and the sort
    # (after the group: the group is the last of the optional columns)
    rows = [ops.sequence(sales.key.size())] if sales.trace is not None else []
    columns = [sales.key, period, sales.order, price, *rows, *([sales.group] if sales.group is not None else [])]
    if dropped:
        columns = ops.select(columns, ops.both(good_price, inside))
    # rule 2 in time order: sorted by (property, period, order), ties in row order
    key, period, _, price, *rest = ops.gather(columns, ops.stable_order(columns[:3]))
    same_period = ops.both(
        ops.compare(key, "EQUAL", ops.next_value(key)), ops.compare(period, "EQUAL", ops.next_value(period))
    )
    drop("sale_same_period_duplicate", same_period)
    if "sale_same_period_duplicate" in dropped:
        key, period, price, *rest = ops.select([key, period, price, *rest], ops.negate(same_period))
    rows, group = rest[: len(rows)], rest[len(rows) :]
    # rule 3: each sale with the next one of its property, or with every later one
    first_sale, second_sale = _pair_rows(ops, key, rules.pairing)
    prev, p0, *sale_prev = ops.gather([period, price, *rows], first_sale)
    recent, p1, *more = ops.gather([period, price, *rows, *group], second_sale)
    sale_recent, pair_group = more[: len(rows)], more[len(rows) :]
    y = ops.unary(ops.binary(p1, p0, "TRUE_DIV", ops.float64), "LOG")
    ok, filtered = filter_pairs(ops, prev, recent, y, pair_group[0] if pair_group else None, rules, sales.group_labels)
    pairs = [pair_group[0] if pair_group else None, prev, recent, p0, p1, y, *sale_prev, *sale_recent]
    if ok is not None:
        kept = ops.select([c for c in pairs if c is not None], ok)
        pairs = [kept.pop(0) if pair_group else None, *kept]
    trace = None
    if sales.trace is not None:  # the pairs' two sales, gathered on the device, to the host
        trace = sales.trace.of_pairs(ops, pairs[6], pairs[7])
    group_codes, *arrays = [None if c is None else device.device_array(c) for c in pairs[:6]]
    prev_a, recent_a, p0_a, p1_a, y_a = arrays
    dropped = add_counts(dropped, filtered)
    return SalePairs(
        group_codes, prev_a, recent_a, p0_a, p1_a, y_a, sales.group_labels, n_periods, dropped, trace=trace
    )


def _pair_rows(ops: device.Ops, key: Any, pairing: str) -> tuple[Any, Any]:
    """(earlier, later) rows of the pairs of sales sorted by property then time, ordered by the
    earlier sale, then the later (data.pairing._pair_indices)."""
    n = key.size()
    rows = ops.sequence(n)
    firsts, seconds = [], []
    for distance in range(1, max(n, 1)):
        same = ops.compare(key, "EQUAL", ops.next_value(key, distance))
        (first,) = ops.select([rows], same)
        if first.size() == 0:
            break  # no property has more than `distance` sales
        firsts.append(first)
        seconds.append(ops.binary(first, distance, "ADD", ops.int32))
        if pairing == "consecutive":
            break
    if not firsts:
        empty = ops.select([rows], ops.compare(rows, "EQUAL", -1))[0]
        return empty, empty
    first, second = ops.concatenate(firsts), ops.concatenate(seconds)
    if len(firsts) > 1:
        first, second = ops.gather([first, second], ops.stable_order([first, second]))
    return first, second
