"""Readers of raw sale records (one row per sale), for pairing in arrays (data/pairing.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..data.pairing import Sales
from ..data.pairs import encode_groups
from ..errors import ConfigError
from . import device
from ._sale_batches import SaleTrace
from .columns import chunked, concat_groups, float_values, group_values
from .device_sales import DeviceSales, frame_sales, read_sales
from .files import input_files, parquet_file, record_batches
from .frames import FRAME, frame_batches
from .periods import column_periods, order_within_period, undated


@dataclass(frozen=True)
class RawSales:
    """Sale records read on the host: key: (S,) int64 codes of the (composite) property key;
    period: (S,) int32 absolute periods; order: (S,) int64 days (or periods) to order sales within a
    period; price: (S,) float64 (NaN where null); group: ids or None. Sales with a missing date or
    property key are already dropped and counted (n_missing_date, dropped). trace: where each sale
    came from (SaleSource.trace), else None."""

    key: np.ndarray
    period: np.ndarray
    order: np.ndarray
    price: np.ndarray
    group: Any
    n_missing_date: int
    dropped: dict[str, int]
    trace: SaleTrace | None = None

    @property
    def n_sales(self) -> int:
        return int(self.price.shape[0]) + self.n_missing_date + sum(self.dropped.values())

    def to_sales(self, backend: Any, first: int, n_periods: int) -> Sales:
        """Sales on the backend, periods as positions from the absolute period `first`."""
        xp = backend.xp
        if self.group is None:
            codes, labels = None, np.asarray(["ALL"], dtype=object)
        else:
            codes, labels = encode_groups(backend, self.group)
        return Sales(
            xp.asarray(self.key),
            xp.asarray(self.period.astype(np.int64) - first),
            xp.asarray(self.order),
            xp.asarray(self.price),
            codes,
            labels,
            n_periods,
        )


@dataclass(frozen=True)
class SaleSource:
    """Where and how to read sale records: property is one column name or several (a composite key)."""

    path: str
    format: str
    property: list[str]
    date: str
    price: str
    group: str | None = None
    periodicity: str = "month"
    integer_periods: str = "index"
    start: str | None = None
    batch_rows: int = 1 << 21
    memory_limit: str | None = None  # of DuckDB's pairing on the CPU (sql.connect); None: its default
    trace: bool = False  # keep each sale's key, date, file and row for the pairs (data.save_pairs)
    # sale records in memory in place of files: a pyarrow Table (io/frames.py), or a cudf frame's
    # columns on the device (io/device.DeviceFrame)
    frame: pa.Table | device.DeviceFrame | None = None

    def read(self) -> RawSales:
        """Every sale (pairing needs all sales of a property together), read batch by batch."""
        names = self.columns()
        if isinstance(self.frame, device.DeviceFrame):
            raise ValueError("a frame on the device is read by read_device")
        if self.frame is not None:
            files, fmt = [FRAME], "frame"
            batches = frame_batches(self.frame, names, self.batch_rows)
        else:
            files, fmt = input_files(self.path, self.format)
            codes = [*self.property, *([self.group] if self.group else [])]
            batches = record_batches(files, fmt, names, self.batch_rows, codes)
        keys: list[list[pa.ChunkedArray | pa.Array]] = [[] for _ in self.property]
        periods, orders, prices, groups = [], [], [], []
        dates, positions = [], []  # traced: the dates as read, each sale's row among all files' rows
        missing_date = n_read = 0
        for batch in batches:
            date = batch.column(self.date)
            null = undated(date)
            n_null = int(pc.sum(null).as_py() or 0)
            rows = np.arange(n_read, n_read + batch.num_rows) if self.trace else None
            n_read += batch.num_rows
            if n_null:
                keep = pc.invert(null)
                batch = batch.filter(keep)
                date = batch.column(self.date)
                missing_date += n_null
                rows = None if rows is None else rows[keep.to_numpy(zero_copy_only=False)]
            if rows is not None:
                dates.append(date)
                positions.append(rows)
            periods.append(column_periods(date, self.date, self.periodicity, self.integer_periods, self.start))
            orders.append(order_within_period(date, periods[-1]))
            prices.append(float_values(batch.column(self.price), self.price, self.path))
            if self.group:
                groups.append(group_values(batch.column(self.group)))
            for k, name in enumerate(self.property):
                keys[k].append(batch.column(name))
        key_columns = [chunked(parts) for parts in keys]
        prop = _composite_codes(key_columns)
        period = np.concatenate(periods) if periods else np.zeros(0, np.int32)
        order = np.concatenate(orders) if orders else np.zeros(0, np.int64)
        price = np.concatenate(prices) if prices else np.zeros(0)
        group = concat_groups(groups) if self.group else None
        trace = self._trace(files, fmt, key_columns, dates, positions, n_read) if self.trace else None
        missing_key = prop < 0
        dropped = {}
        if missing_key.any():
            dropped["sale_missing_property"] = int(missing_key.sum())
            ok = ~missing_key
            prop, period, order, price = prop[ok], period[ok], order[ok], price[ok]
            group = (
                None
                if group is None
                else (group[ok] if isinstance(group, np.ndarray) else group[ok].reset_index(drop=True))
            )
            trace = None if trace is None else _kept(trace, ok)
        return RawSales(prop, period, order, price, group, missing_date, dropped, trace)

    def _trace(
        self, files: list[str], fmt: str, keys: list[pa.ChunkedArray], dates: list[Any], positions: list[Any], n: int
    ) -> SaleTrace:
        """The dated sales' SaleTrace: their positions among the rows of all files (the batches
        come file after file, in order, every row) turned into (file, row within the file)."""
        rows = np.concatenate(positions) if positions else np.zeros(0, np.int64)
        if fmt == "parquet":
            bounds = np.cumsum([0, *(parquet_file(path).metadata.num_rows for path in files)])
            assert bounds[-1] == n, "the batches cover every row of the files"
            file = np.searchsorted(bounds, rows, side="right") - 1
            rows = rows - bounds[file]
        else:  # one CSV file, or the frame (its rows' positions)
            file = np.zeros(rows.shape, dtype=np.int32)
        date = chunked(dates) if dates else pa.chunked_array([], pa.null())
        return SaleTrace(dict(zip(self.property, keys, strict=True)), self.date, date, file, rows, files)

    def reads_on_device(self, gpu: bool) -> bool:
        """True where the sales are read and paired on the GPU (parquet, pylibcudf importable; a
        cudf frame on the device)."""
        if self.frame is not None:
            return isinstance(self.frame, device.DeviceFrame)
        return gpu and input_files(self.path, self.format)[1] == "parquet" and device.library() is not None

    def read_device(self) -> DeviceSales:
        """Every sale of the parquet files, or of a cudf frame, as device columns (io.device_sales)."""
        ops = device.Ops(device.library())
        if isinstance(self.frame, device.DeviceFrame):
            return frame_sales(ops, self.frame, self)
        files, _fmt = input_files(self.path, self.format)
        return read_sales(ops, files, self)

    def columns(self) -> list[str]:
        """The columns read, each once. The group may also be a part of the property key (a
        region code that tells properties of different regions apart); other roles that share a
        column contradict each other and are refused."""
        roles: dict[str, list[str]] = {}
        for role, names in (
            ("property", self.property),
            ("date", [self.date]),
            ("price", [self.price]),
            ("group", [self.group] if self.group else []),
        ):
            for name in names:
                roles.setdefault(name, []).append(role)
        for name, held in roles.items():
            if held.count("property") > 1:
                raise ConfigError(f"the transaction columns: {name!r} appears twice in the property key")
            if len(held) > 1 and sorted(held) != ["group", "property"]:
                raise ConfigError(
                    f"the transaction columns must be distinct: {name!r} is both the {' and the '.join(held)} "
                    "(only the group may also be part of the property key)"
                )
        return list(roles)


def _kept(trace: SaleTrace, ok: np.ndarray) -> SaleTrace:
    """The trace of the sales where ok."""
    mask = pa.array(ok)
    keys = {name: col.filter(mask) for name, col in trace.keys.items()}
    return replace(trace, keys=keys, date=trace.date.filter(mask), file=trace.file[ok], row=trace.row[ok])


def _composite_codes(columns: list[pa.ChunkedArray]) -> np.ndarray:
    """One int64 code per distinct combination of the key columns (-1 where any part is null)."""
    codes: np.ndarray | None = None
    for col in columns:
        if pa.types.is_integer(col.type) and col.null_count == 0:
            part, uniques = pd.factorize(col.to_numpy())
        elif pa.types.is_integer(col.type):  # nullable integers stay exact (not float64)
            part, uniques = pd.factorize(col.to_pandas(types_mapper=lambda _: pd.Int64Dtype()), use_na_sentinel=True)
        else:
            part, uniques = pd.factorize(col.to_pandas(), use_na_sentinel=True)
        part = part.astype(np.int64)
        if codes is None:
            codes = part
            continue
        width = max(len(uniques), 1)
        missing = (codes < 0) | (part < 0)
        if int(codes.max(initial=0)) + 1 > (2**62) // width:  # keep the combined code in int64
            codes, _ = pd.factorize(codes)
        codes = np.where(missing, -1, codes * width + part)
    assert codes is not None
    return codes
