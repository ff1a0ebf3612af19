"""Pair files: readers of repeat-sales pairs from parquet (a file, a directory or a glob of parts),
CSV or a frame in memory, streamed in batches (io/pair_batch.py) by pyarrow on the host or decoded
on the GPU (io/device_pairs.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError
from . import device, device_pairs
from .columns import float_values, group_values
from .files import input_files, parquet_file, record_batches
from .frames import frame_batches
from .pair_batch import PairBatch, ready
from .periods import column_periods, undated


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
        for name in set(wanted.values()):
            held = [role for role, column in wanted.items() if column == name]
            if len(held) > 1:  # one column read as two: a flat index of y = the group ids, or no usable pair
                raise ConfigError(f"the pair columns must be distinct: {name!r} is both the {' and the '.join(held)}")
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
            for batch in device_pairs.frame_batches(self, self.frame, wanted, arrays):
                yield functools.partial(ready, batch)
            return
        if self.frame is not None:
            for record_batch in frame_batches(self.frame, list(wanted.values()), self.batch_rows):
                yield functools.partial(self.convert, record_batch, wanted)
            return
        files, fmt = self.files()
        if self.reads_on_device(gpu):
            for batch in device_pairs.file_batches(self, files, wanted, arrays):
                yield functools.partial(ready, batch)
            return
        codes = [wanted["group"]] if "group" in wanted else []
        for record_batch in record_batches(files, fmt, list(wanted.values()), self.batch_rows, codes):
            yield functools.partial(self.convert, record_batch, wanted)

    def reads_on_device(self, gpu: bool) -> bool:
        """True where the batches are decoded on the GPU (parquet, pylibcudf importable)."""
        return gpu and self.files()[1] == "parquet" and device.library() is not None

    def convert(self, batch: pa.Table | pa.RecordBatch, wanted: dict[str, str]) -> PairBatch:
        cols = {role: batch.column(name) for role, name in wanted.items()}
        missing = pc.or_(undated(cols["prev"]), undated(cols["recent"]))
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
