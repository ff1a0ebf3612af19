"""A batch of pairs as a reader gives it (host arrays, or the device reader's libcudf columns),
and its cell table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..data.calendar import check_window
from ..data.cells import CellTable
from ..data.pairs import GroupCodes, prepare_pairs
from . import device, device_columns


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


def ready(batch: PairBatch) -> PairBatch:
    """A batch job for a batch already converted."""
    return batch
