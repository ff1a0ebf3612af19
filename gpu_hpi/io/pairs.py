"""Pair files: readers of repeat-sales pairs from parquet (a file, a directory or a glob of parts) or
CSV, streamed in batches by pyarrow on the host or decoded on the GPU (io.device), each batch with
its cell table."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data.calendar import check_window, parse_period
from ..data.cells import CellTable
from ..data.pairs import GroupCodes, prepare_pairs
from ..errors import ConfigError, DataError
from . import device, device_columns
from .columns import float_values, group_values
from .files import (
    check_columns,
    decoded_row_bytes,
    input_files,
    parquet_file,
    plan_reads,
    record_batches,
)
from .frames import check_frame_columns, frame_batches
from .periods import column_periods


@dataclass(frozen=True)
class PairBatch:
    """One batch of pairs: prev, recent: (n,) int32 periods counted from the absolute period
    `origin` (0: absolute); y: (n,) float64 (NaN where null); group: (n,) group ids (numpy, pandas,
    or GroupCodes from the device reader) or None; price_prev, price_recent: (n,) float64 prices or
    None. missing_period: rows dropped for a null period. bounds: the absolute (first, last) period
    of the batch where the reader found them (else computed from the arrays). ops: the device
    reader's operations where the fields are libcudf columns, not arrays (`arrays()` views them as
    CuPy arrays): their cell table is libcudf's work alone, without CuPy."""

    prev: Any
    recent: Any
    y: Any
    group: Any
    missing_period: int
    price_prev: Any = None
    price_recent: Any = None
    origin: int = 0
    bounds: tuple[int, int] | None = None
    ops: device.Ops | None = None

    @property
    def n_rows(self) -> int:
        return int(self.y.size() if self.ops is not None else self.y.shape[0])

    def arrays(self) -> PairBatch:
        """This batch with arrays for fields (CuPy's views of the device reader's columns, no copy)."""
        if self.ops is None:
            return self
        group = self.group
        if isinstance(group, GroupCodes):
            group = GroupCodes(device.device_array(group.codes), group.labels)
        prices = [None if p is None else device.device_array(p) for p in (self.price_prev, self.price_recent)]
        prev, recent, y = (device.device_array(c) for c in (self.prev, self.recent, self.y))
        return replace(
            self, prev=prev, recent=recent, y=y, group=group, price_prev=prices[0], price_recent=prices[1], ops=None
        )

    def periods_from(self, first: int) -> tuple[Any, Any]:
        """(prev, recent) counted from the absolute period `first`."""
        shift = first - self.origin
        if shift == 0:  # the device reader counts from the window's start already: no kernel
            return self.prev, self.recent
        if self.ops is not None:
            return tuple(self.ops.binary(p, shift, "SUB", self.ops.int32) for p in (self.prev, self.recent))
        return self.prev - np.int32(shift), self.recent - np.int32(shift)

    def cell_table(
        self, start: int | None, end: int | None, backend: Any, strict: bool = False, threads: int | None = None
    ) -> tuple[int, CellTable]:
        """(absolute first period, cell table) of this non-empty batch over its own period range,
        or over the window [start, end] where given (pairs outside it are dropped and counted)."""
        lo_abs, hi_abs = self.bounds or (
            int(min(self.prev.min(), self.recent.min())) + self.origin,
            int(max(self.prev.max(), self.recent.max())) + self.origin,
        )
        lo = start if start is not None else lo_abs
        if start is None and end is not None:
            lo = min(lo, end - 1)  # a batch starting after the end: all of it out of the window
        hi = end if end is not None else max(hi_abs, lo + 1)
        check_window(lo, hi)
        prev, recent = self.periods_from(lo)
        n_periods = max(hi - lo + 1, 2)
        if self.ops is not None and self.price_prev is None:  # libcudf's columns: no CuPy
            codes, labels = (None, np.asarray(["ALL"], dtype=object))
            if self.group is not None:
                codes, labels = self.group.codes, self.group.labels
            return lo, device_columns.columns_cell_table(
                self.ops, prev, recent, self.y, codes, labels, n_periods, strict
            )
        if self.ops is not None:
            return self.arrays().cell_table(start, end, backend, strict, threads)
        pairs = prepare_pairs(
            prev,
            recent,
            self.y,
            self.group,
            n_periods=n_periods,
            backend=backend,
            price_prev=self.price_prev,
            price_recent=self.price_recent,
        )
        return lo, device_columns.build_table(pairs, backend, strict=strict, threads=threads)


@dataclass(frozen=True)
class PairSource:
    """Where and how to read pairs. columns: role (group/prev/recent/y) -> column name."""

    path: str
    format: str
    columns: dict[str, str | None]  # roles: group, prev, recent, y, price_prev, price_recent
    periodicity: str = "month"
    integer_periods: str = "index"
    start: str | None = None
    batch_rows: int = 1 << 22
    # GPU reads: bytes of decoded columns per read (backend.memory.device_read_budget); None: batch_rows
    device_read_bytes: int | None = None
    memory_limit: str | None = None  # of DuckDB's reads on the CPU (sql.connect); None: its default
    # pairs in memory in place of files: a pyarrow Table (io/frames.py), or a cudf frame's columns
    # on the device (io/device.DeviceFrame)
    frame: pa.Table | device.DeviceFrame | None = None

    def files(self) -> tuple[list[str], str]:
        """The files to read and their format (parquet or csv); DataError if there are none."""
        return input_files(self.path, self.format)

    def count_rows(self) -> int | None:
        """Rows in the input when the format tells it cheaply (parquet metadata), else None."""
        if self.frame is not None:
            return int(self.frame.num_rows)
        files, fmt = self.files()
        if fmt != "parquet":
            return None
        return sum(parquet_file(path).metadata.num_rows for path in files)

    def wanted(self) -> dict[str, str]:
        wanted = {role: name for role, name in self.columns.items() if name}
        if ("price_prev" in wanted) != ("price_recent" in wanted):
            raise ConfigError("set both data.columns.price_prev and data.columns.price_recent, or neither")
        if "y" not in wanted and "price_prev" not in wanted:
            raise ConfigError("data.columns.y is null: give the price columns to compute it from")
        return wanted

    def batches(self, gpu: bool = False, arrays: bool = True) -> Iterator[PairBatch]:
        """Stream the pairs in batches of about `batch_rows` rows (host arrays; with `gpu=True` and
        pylibcudf importable, parquet is decoded on the GPU and the batches hold CuPy arrays, or
        libcudf's columns with arrays=False)."""
        for job in self.batch_jobs(gpu, arrays):
            yield job()

    def batch_jobs(self, gpu: bool = False, arrays: bool = True) -> Iterator[Callable[[], PairBatch]]:
        """Like `batches`, but each item is a call that converts the batch, so that callers can run
        the conversions of several batches in parallel while the reader decodes the next ones.
        arrays=False: batches decoded on the GPU may keep libcudf's columns (PairBatch.ops), for a
        caller that needs only their cell tables."""
        wanted = self.wanted()
        if isinstance(self.frame, device.DeviceFrame):
            for batch in self._device_frame_batches(self.frame, wanted, arrays):
                yield functools.partial(ready, batch)
            return
        if self.frame is not None:
            for record_batch in frame_batches(self.frame, list(wanted.values()), self.batch_rows):
                yield functools.partial(self.convert, record_batch, wanted)
            return
        files, fmt = self.files()
        if self.reads_on_device(gpu):
            for batch in self._device_batches(files, wanted, arrays):
                yield functools.partial(ready, batch)
            return
        for record_batch in record_batches(files, fmt, list(wanted.values()), self.batch_rows):
            yield functools.partial(self.convert, record_batch, wanted)

    def reads_on_device(self, gpu: bool) -> bool:
        """True where the batches are decoded on the GPU (parquet, pylibcudf importable)."""
        return gpu and self.files()[1] == "parquet" and device.library() is not None

    def _device_batches(self, files: list[str], wanted: dict[str, str], arrays: bool) -> Iterator[PairBatch]:
        """Whole row-group sets decoded on the device, as large as the device budget allows (the
        whole file where it fits): a few large reads, not one per small batch."""
        ops = device.Ops(device.library())
        for path in files:
            meta = parquet_file(path)
            check_columns(meta.schema_arrow.names, list(wanted.values()), [path])
            rows = [meta.metadata.row_group(k).num_rows for k in range(meta.num_row_groups)]
            max_rows = self.batch_rows
            if self.device_read_bytes is not None:
                max_rows = max(1, self.device_read_bytes // decoded_row_bytes(meta.schema_arrow, wanted))
            for groups in plan_reads(rows, max_rows) or [[]]:
                read = ops.read_parquet(path, list(wanted.values()), groups if groups else None)
                yield self.convert_device(ops, read, wanted, meta.schema_arrow, arrays)

    def _device_frame_batches(
        self, frame: device.DeviceFrame, wanted: dict[str, str], arrays: bool
    ) -> Iterator[PairBatch]:
        """A frame's columns on the device in row ranges (views), as large as the device budget
        allows (the whole frame where it fits), each converted as a parquet read's columns."""
        names = list(dict.fromkeys(wanted.values()))
        check_frame_columns(list(frame.columns), names)
        max_rows = self.batch_rows
        if self.device_read_bytes is not None:
            max_rows = max(1, self.device_read_bytes // decoded_row_bytes(frame.schema, wanted))
        ops = device.Ops(device.library())
        for start in range(0, frame.num_rows, max_rows):
            part = ops.slice([frame.columns[n] for n in names], start, min(start + max_rows, frame.num_rows))
            yield self.convert_device(ops, dict(zip(names, part, strict=True)), wanted, frame.schema, arrays)

    def convert_device(
        self,
        ops: device.Ops,
        columns: dict[str, Any],
        wanted: dict[str, str],
        schema: pa.Schema | None = None,
        arrays: bool = True,
    ) -> PairBatch:
        """A batch of device columns (name -> pylibcudf column, taken over: each is released once
        converted, to bound the device's peak): periods, prices and integer groups made by libcudf,
        counted from the window's start (data.start) or the batch's first period; string or nullable
        groups on the host. arrays=False keeps libcudf's columns where the groups are on the device."""
        cols = {role: columns[name] for role, name in wanted.items()}
        columns.clear()
        n_before = cols["prev"].size()
        if cols["prev"].null_count() or cols["recent"].null_count():
            missing = ops.either(ops.is_null(cols["prev"]), ops.is_null(cols["recent"]))
            kept = ops.select(list(cols.values()), ops.negate(missing))
            cols = dict(zip(cols, kept, strict=True))

        def file_type(role: str) -> pa.DataType | None:
            return schema.field(wanted[role]).type if schema is not None and wanted[role] in schema.names else None

        numbers = {}
        for role in ("y", "price_prev", "price_recent"):
            if role in cols:
                if not device_columns.numeric(file_type(role), cols[role]):
                    raise DataError(
                        f"column {wanted[role]!r} of {self.path} must be numeric, got {cols[role].type().to_arrow()}"
                    )
                numbers[role] = ops.nan_for_null(cols[role])
        if "y" not in numbers:
            ratio = ops.binary(numbers["price_recent"], numbers["price_prev"], "TRUE_DIV", ops.float64)
            numbers["y"] = ops.unary(ratio, "LOG")
        n_kept = cols["prev"].size()
        group: Any = None
        if "group" in cols:
            ids = cols.pop("group")
            encoded = device_columns.group_codes(ops, ids)
            group = group_values(ids.to_arrow()) if encoded is None else GroupCodes(*encoded)
        prev, recent = (
            device_columns.periods(
                ops, cols.pop(r), wanted[r], self.periodicity, self.integer_periods, self.start, file_type(r)
            )
            for r in ("prev", "recent")
        )
        extremes = [e for e in (ops.minmax(prev), ops.minmax(recent)) if e is not None]
        bounds = (min(e[0] for e in extremes), max(e[1] for e in extremes)) if extremes else None
        origin = parse_period(self.start, self.periodicity) if self.start is not None else (bounds or (0, 0))[0]
        if origin:
            prev, recent = (ops.binary(p, origin, "SUB", ops.int32) for p in (prev, recent))
        batch = PairBatch(
            prev,
            recent,
            numbers["y"],
            group,
            n_before - n_kept,
            numbers.get("price_prev"),
            numbers.get("price_recent"),
            origin=origin,
            bounds=bounds,
            ops=ops,
        )
        on_host = group is not None and not isinstance(group, GroupCodes)
        return batch.arrays() if arrays or on_host else batch

    def convert(self, batch: pa.Table | pa.RecordBatch, wanted: dict[str, str]) -> PairBatch:
        cols = {role: batch.column(name) for role, name in wanted.items()}
        missing = pc.or_(pc.is_null(cols["prev"]), pc.is_null(cols["recent"]))
        n_missing = int(pc.sum(missing).as_py() or 0)
        if n_missing:  # rare: filter the batch once rather than carry sentinels
            keep = pc.invert(missing)
            cols = {role: pc.filter(col, keep) for role, col in cols.items()}
        numbers = {
            role: float_values(cols[role], wanted[role], self.path)
            for role in ("y", "price_prev", "price_recent")
            if role in cols
        }
        if "y" not in numbers:
            with np.errstate(divide="ignore", invalid="ignore"):
                numbers["y"] = np.log(numbers["price_recent"] / numbers["price_prev"])
        prev = self.periods(cols["prev"], wanted["prev"])
        recent = self.periods(cols["recent"], wanted["recent"])
        group = group_values(cols["group"]) if "group" in cols else None
        return PairBatch(
            prev, recent, numbers["y"], group, n_missing, numbers.get("price_prev"), numbers.get("price_recent")
        )

    def periods(self, arr: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
        """Absolute periods (int32) of a period column without nulls."""
        return column_periods(arr, name, self.periodicity, self.integer_periods, self.start)


def ready(batch: PairBatch) -> PairBatch:
    """A batch job for a batch already converted."""
    return batch
