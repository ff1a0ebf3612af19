"""The cell table: per (group, prev, recent) cell the pair count, sums of y and y^2 (and of prices).

Z'Z, Z'y and the residual sum of squares of any index depend on the pairs only through these
sums (see the README's "How it works"), so one pass over the pairs reduces any number of them
to at most G x T x (T - 1) / 2 cells. Tables of disjoint chunks add up to the table of their union.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..backend.core import Backend, array_namespace, to_host
from ..errors import DataError
from .keys import reduce_by_key
from .rules import add_counts

# At most this many (group, prev, recent) keys: bincount into a dense key space per chunk
# (~100 MB of accumulators). Beyond it (thousands of groups), reduce by sorting the keys.
DENSE_KEY_LIMIT = 1 << 22


# The pooled index's name, which is also the one group of pairs without a group column.
POOLED = "ALL"

# Per-cell sums: of y and y^2 always; of the prices, their squares and cross product when the pairs
# carry prices (Shiller's arithmetic index needs them).
Y_SUMS = ("y", "y2")
PRICE_SUMS = ("p_prev", "p_recent", "p_prev2", "p_recent2", "p_cross")


@dataclass(frozen=True)
class CellTable:
    """Sufficient statistics of repeat-sales pairs, one row per non-empty cell, sorted by key.

    group: (C,) int64 codes into `group_labels` ((G,) host array);
    prev, recent: (C,) int64 periods, prev < recent < n_periods;
    count: (C,) int64 number of pairs;
    sums: name -> (C,) float64 per-cell sums: "y", "y2" (y^2) and, for pairs with prices,
    "p_prev", "p_recent", "p_prev2", "p_recent2" (squares) and "p_cross" (P_prev * P_recent).
    Arrays live on the backend that built the table (numpy or cupy).
    dropped: reason -> number of invalid pairs left out of the table.
    """

    n_periods: int
    group_labels: np.ndarray
    group: Any
    prev: Any
    recent: Any
    count: Any
    sums: dict[str, Any]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def sum_y(self) -> Any:
        return self.sums["y"]

    @property
    def sum_y2(self) -> Any:
        return self.sums["y2"]

    @property
    def has_prices(self) -> bool:
        return all(name in self.sums for name in PRICE_SUMS)

    @property
    def n_groups(self) -> int:
        return int(self.group_labels.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.count.shape[0])

    @property
    def n_pairs(self) -> int:
        return int(self.count.sum())

    def key(self) -> Any:
        return cell_key(self.group, self.prev, self.recent, self.n_periods)

    def pooled(self, label: str = POOLED) -> CellTable:
        """The table of all groups together, as a single group named `label`."""
        xp = array_namespace(self.count)
        key = cell_key(None, self.prev, self.recent, self.n_periods)
        labels = np.asarray([label], dtype=object)
        pooled = from_keys(
            xp, self.n_periods, labels, *reduce_by_key(xp, key, self.count, self.sums, dense_keys(self.n_periods**2))
        )
        return replace(pooled, dropped=self.dropped)

    def select(self, cells: Any) -> CellTable:
        """The table of a subset of the cells (a boolean mask or indices over the cells)."""
        return replace(
            self,
            group=self.group[cells],
            prev=self.prev[cells],
            recent=self.recent[cells],
            count=self.count[cells],
            sums={k: v[cells] for k, v in self.sums.items()},
        )

    def truncate(self, last: int) -> CellTable:
        """The table as if period `last` were the last one: cells with recent <= last, last + 1 periods."""
        return replace(self.select(self.recent <= last), n_periods=last + 1)

    def to_backend(self, backend: Backend) -> CellTable:
        """The table with the backend's arrays (itself on the CPU): a table made on the host, such as
        a Dask worker's copy of the summed table, used with device pairs."""
        xp = backend.xp  # numpy's asarray of a numpy array is the array itself
        return replace(
            self,
            group=xp.asarray(self.group),
            prev=xp.asarray(self.prev),
            recent=xp.asarray(self.recent),
            count=xp.asarray(self.count),
            sums={k: xp.asarray(v) for k, v in self.sums.items()},
        )

    def to_host(self) -> CellTable:
        """The table with host (numpy) arrays."""
        return replace(
            self,
            group=to_host(self.group),
            prev=to_host(self.prev),
            recent=to_host(self.recent),
            count=to_host(self.count),
            sums={k: to_host(v) for k, v in self.sums.items()},
        )

    def __add__(self, other: CellTable) -> CellTable:
        return merge_tables([self, other])

    def __sub__(self, other: CellTable) -> CellTable:
        """The table of these pairs less a subset of them (e.g. a cross-validation fold)."""
        negated = replace(other, count=-other.count, sums={k: -v for k, v in other.sums.items()}, dropped={})
        return merge_tables([self, negated])

    def shift(self, offset: int, n_periods: int) -> CellTable:
        """The same cells in a wider window: period p becomes p + offset of n_periods periods."""
        if offset < 0 or offset + self.n_periods > n_periods:
            raise DataError(f"cannot place {self.n_periods} periods at offset {offset} in a window of {n_periods}")
        return replace(self, n_periods=n_periods, prev=self.prev + offset, recent=self.recent + offset)


def dense_keys(n_keys: int) -> int | None:
    """n_keys where a dense table of that many keys is small enough (DENSE_KEY_LIMIT), else None."""
    return n_keys if n_keys <= DENSE_KEY_LIMIT else None


def cell_key(group: Any, prev: Any, recent: Any, t: int) -> Any:
    """The cell key (group * T + prev) * T + recent as int64 (group None: a single group), the one
    order of every table's cells; from_keys splits it. (io.device_columns states it in libcudf's operations.)"""
    key = prev.astype(np.int64) * t + recent.astype(np.int64)
    return key if group is None else key + group.astype(np.int64) * (t * t)


def from_keys(xp: Any, t: int, labels: np.ndarray, key: Any, count: Any, sums: dict[str, Any]) -> CellTable:
    """The table of cells given by their keys (cell_key), ascending."""
    key = key.astype(np.int64)
    return CellTable(t, labels, key // (t * t), (key // t) % t, key % t, count.astype(np.int64), sums)


def merge_tables(tables: list[CellTable]) -> CellTable:
    """Sum cell tables (of disjoint sets of pairs) into the table of their union.

    Group labels are aligned by value; all tables must share n_periods and a backend.
    """
    if not tables:
        raise DataError("no cell tables to merge")
    t = tables[0].n_periods
    if any(tb.n_periods != t for tb in tables):
        raise DataError(
            f"cannot merge cell tables with different numbers of periods: {[tb.n_periods for tb in tables]}"
        )
    xp = array_namespace(tables[0].count)
    labels = _union_labels([tb.group_labels for tb in tables])
    check_group_labels(labels)
    keys = []
    for tb in tables:
        remap = xp.asarray(np.searchsorted(labels, tb.group_labels).astype(np.int64))
        keys.append(cell_key(remap[tb.group], tb.prev, tb.recent, t))
    names = [k for k in tables[0].sums if all(k in tb.sums for tb in tables)]  # prices only if all have them
    count = xp.concatenate([tb.count for tb in tables])
    totals = {k: xp.concatenate([tb.sums[k] for tb in tables]) for k in names}
    sums = reduce_by_key(xp, xp.concatenate(keys), count, totals, dense_keys(labels.shape[0] * t * t))
    merged = from_keys(xp, t, labels, *sums)
    dropped: dict[str, int] = functools.reduce(add_counts, (tb.dropped for tb in tables), {})
    return replace(merged, dropped=dropped)


def check_group_labels(labels: np.ndarray) -> None:
    """Refuse a group named "ALL" beside other groups: results, reports and charts would take it for
    the pooled index (or a table without groups merged with grouped ones for one region)."""
    if labels.shape[0] > 1 and any(isinstance(label, str) and label == POOLED for label in labels.tolist()):
        others = ", ".join(map(str, [label for label in labels.tolist() if label != POOLED][:5]))
        raise DataError(
            f'a group is named "{POOLED}", the name of the pooled index and of pairs without groups, '
            f"beside the groups {others}{', ...' if labels.shape[0] > 6 else ''}: rename that group "
            "(or give every table of a merge its groups)"
        )


def _union_labels(label_sets: list[np.ndarray]) -> np.ndarray:
    try:
        return np.unique(np.concatenate(label_sets))
    except TypeError as exc:
        raise DataError(f"group labels of the tables cannot be compared ({exc})") from exc


class TableAccumulator:
    """Sums per-batch cell tables whose periods start at different absolute offsets."""

    FOLD_EVERY = 16

    def __init__(self) -> None:
        self.parts: list[tuple[int, CellTable]] = []
        self.missing_period = 0  # rows the readers dropped for a null period

    def add(self, offset: int, table: CellTable) -> None:
        self.parts.append((offset, table))
        if len(self.parts) >= self.FOLD_EVERY:
            self.parts = [self.total()]

    def total(self, start: int | None = None, end: int | None = None) -> tuple[int, CellTable]:
        """(absolute start, table) of everything added, over [start, end] where given."""
        lo = min(off for off, _ in self.parts) if start is None else start
        hi = max(off + tb.n_periods - 1 for off, tb in self.parts) if end is None else end
        placed = [tb.shift(off - lo, hi - lo + 1) for off, tb in self.parts]
        # one table (a file read at once) has nothing to add up: merging it would sort every cell
        # again (75M cells for 150M pairs over 10,000 regions: 7 s)
        return lo, placed[0] if len(placed) == 1 else merge_tables(placed)
