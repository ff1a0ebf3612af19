"""The cell table: per (group, prev, recent) cell the pair count, sum of y and sum of y^2.

Z'Z, Z'y and the residual sum of squares of any index depend on the pairs only through these
sums (see the README's "How it works"), so one pass over the pairs reduces any number of them
to at most G x T x (T - 1) / 2 cells. Tables of disjoint chunks add up to the table of their union.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .backend import Backend, array_namespace
from .errors import DataError
from .pairs import Pairs, add_counts, check_strict, count_invalid

# At most this many (group, prev, recent) keys: bincount into a dense key space per chunk
# (~100 MB of accumulators). Beyond it (thousands of groups), reduce by sorting the keys.
DENSE_KEY_LIMIT = 1 << 22
CPU_CHUNK = 1 << 22  # pairs per chunk on the CPU: keeps temporaries in cache-friendly, bounded sizes
GPU_CHUNK = 1 << 28


@dataclass(frozen=True)
class CellTable:
    """Sufficient statistics of repeat-sales pairs, one row per non-empty cell, sorted by key.

    group: (C,) int64 codes into `group_labels` ((G,) host array);
    prev, recent: (C,) int64 periods, prev < recent < n_periods;
    count: (C,) int64 number of pairs; sum_y, sum_y2: (C,) float64 sums of y and y^2.
    Arrays live on the backend that built the table (numpy or cupy).
    dropped: reason -> number of invalid pairs left out of the table.
    """

    n_periods: int
    group_labels: np.ndarray
    group: Any
    prev: Any
    recent: Any
    count: Any
    sum_y: Any
    sum_y2: Any
    dropped: dict[str, int] = field(default_factory=dict)

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
        t = self.n_periods
        return (self.group * t + self.prev) * t + self.recent

    def pooled(self, label: str = "ALL") -> CellTable:
        """The table of all groups together, as a single group named `label`."""
        xp = array_namespace(self.count)
        key = self.prev * self.n_periods + self.recent
        labels = np.asarray([label], dtype=object)
        sums = _reduce_by_key(xp, key, self.count, self.sum_y, self.sum_y2, self.n_periods**2)
        pooled = _from_keys(xp, self.n_periods, labels, *sums)
        return replace(pooled, dropped=self.dropped)

    def to_host(self) -> CellTable:
        def host(a: Any) -> np.ndarray:
            return a if isinstance(a, np.ndarray) else a.get()

        return replace(
            self,
            group=host(self.group),
            prev=host(self.prev),
            recent=host(self.recent),
            count=host(self.count),
            sum_y=host(self.sum_y),
            sum_y2=host(self.sum_y2),
        )

    def __add__(self, other: CellTable) -> CellTable:
        return merge_tables([self, other])

    def shift(self, offset: int, n_periods: int) -> CellTable:
        """The same cells in a wider window: period p becomes p + offset of n_periods periods."""
        if offset < 0 or offset + self.n_periods > n_periods:
            raise DataError(f"cannot place {self.n_periods} periods at offset {offset} in a window of {n_periods}")
        return replace(self, n_periods=n_periods, prev=self.prev + offset, recent=self.recent + offset)


def _reduce_by_key(
    xp: Any, key: Any, count: Any, s1: Any, s2: Any, n_keys: int | None = None
) -> tuple[Any, Any, Any, Any]:
    """Sum count, s1 and s2 over equal keys; returns (unique sorted keys, counts, s1, s2).

    With keys known to lie in [0, n_keys) and a small n_keys, dense bincounts replace the sort.
    """
    if n_keys is not None and n_keys <= DENSE_KEY_LIMIT:
        cnt = xp.bincount(key, weights=count, minlength=n_keys)
        (nonzero,) = xp.nonzero(cnt)
        return (
            nonzero,
            xp.rint(cnt[nonzero]).astype(np.int64),
            xp.bincount(key, weights=s1, minlength=n_keys)[nonzero],
            xp.bincount(key, weights=s2, minlength=n_keys)[nonzero],
        )
    uniq, inverse = xp.unique(key, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = uniq.shape[0]
    # float64 sums of int64 counts are exact below 2^53 pairs per cell
    counts = xp.rint(xp.bincount(inverse, weights=count, minlength=n)).astype(np.int64)
    return uniq, counts, xp.bincount(inverse, weights=s1, minlength=n), xp.bincount(inverse, weights=s2, minlength=n)


def _from_keys(xp: Any, t: int, labels: np.ndarray, key: Any, count: Any, s1: Any, s2: Any) -> CellTable:
    key = key.astype(np.int64)
    return CellTable(t, labels, key // (t * t), (key // t) % t, key % t, count.astype(np.int64), s1, s2)


def _chunk_keys(xp: Any, pairs: Pairs, start: int, stop: int) -> tuple[Any, Any, Any, dict[str, int]]:
    """Cell keys (int64), float64 y, valid mask and drop counts of pairs[start:stop].

    Invalid pairs keep a (meaningless) key and y = 0; callers mask or bucket them away.
    """
    chunk = pairs.chunk(start, stop)
    valid, dropped = count_invalid(xp, chunk)
    t = pairs.n_periods
    key = chunk.prev.astype(np.int64) * t + chunk.recent.astype(np.int64)
    if chunk.group is not None:
        key += chunk.group.astype(np.int64) * (t * t)
    y = xp.where(valid, chunk.y, 0.0).astype(np.float64, copy=False)
    return key, y, valid, dropped


def build_cell_table(
    pairs: Pairs, backend: Backend, *, chunk_size: int | None = None, strict: bool = False
) -> CellTable:
    """One pass over pairs -> their cell table, on the pairs' backend.

    Invalid pairs (see `pairs.invalid_masks`) are left out and counted by reason in
    `table.dropped`; with `strict=True` any of them raises DataError instead.
    Pairs are processed in chunks so that temporaries stay O(chunk) beyond the input arrays;
    on the CPU the chunks are shared by a thread per core (numpy releases the GIL in bincount).
    """
    xp = backend.xp
    t, n = pairs.n_periods, pairs.n_pairs
    n_keys = pairs.n_groups * t * t
    chunk = chunk_size or (GPU_CHUNK if backend.is_gpu else CPU_CHUNK)
    starts = list(range(0, n, chunk))
    workers = 1 if backend.is_gpu else max(1, min(os.cpu_count() or 1, len(starts)))

    if n_keys <= DENSE_KEY_LIMIT:

        def dense_partial(worker: int) -> tuple[Any, Any, Any, dict[str, int]]:
            # invalid pairs go to an extra bucket n_keys, cut off at the end (no compaction copy)
            cnt = xp.zeros(n_keys + 1, dtype=np.int64)
            s1 = xp.zeros(n_keys + 1, dtype=np.float64)
            s2 = xp.zeros(n_keys + 1, dtype=np.float64)
            dropped: dict[str, int] = {}
            for start in starts[worker::workers]:
                key, y, valid, bad = _chunk_keys(xp, pairs, start, min(start + chunk, n))
                key = xp.where(valid, key, n_keys)
                dropped = add_counts(dropped, bad)
                cnt += xp.bincount(key, minlength=n_keys + 1)
                s1 += xp.bincount(key, weights=y, minlength=n_keys + 1)
                s2 += xp.bincount(key, weights=y * y, minlength=n_keys + 1)
            return cnt[:n_keys], s1[:n_keys], s2[:n_keys], dropped

        partials = _run(dense_partial, workers)
        cnt, s1, s2, dropped = partials[0]
        for p in partials[1:]:
            cnt, s1, s2, dropped = cnt + p[0], s1 + p[1], s2 + p[2], add_counts(dropped, p[3])
        if strict:
            check_strict(dropped)
        (nonzero,) = xp.nonzero(cnt)
        table = _from_keys(xp, t, pairs.group_labels, nonzero, cnt[nonzero], s1[nonzero], s2[nonzero])
        return replace(table, dropped=dropped)

    def sparse_partial(worker: int) -> tuple[tuple[Any, Any, Any, Any], dict[str, int]]:
        acc: list[tuple[Any, Any, Any, Any]] = []
        pending = 0
        dropped: dict[str, int] = {}
        for start in starts[worker::workers]:
            key, y, valid, bad = _chunk_keys(xp, pairs, start, min(start + chunk, n))
            dropped = add_counts(dropped, bad)
            key, y = key[valid], y[valid]
            uniq, inverse = xp.unique(key, return_inverse=True)
            inverse = inverse.reshape(-1)
            m = uniq.shape[0]
            acc.append(
                (
                    uniq,
                    xp.bincount(inverse, minlength=m),
                    xp.bincount(inverse, weights=y, minlength=m),
                    xp.bincount(inverse, weights=y * y, minlength=m),
                )
            )
            pending += m
            if pending > 4 * chunk:  # bound memory: fold the pending partial tables into one
                acc = [_concat_reduce(xp, acc)]
                pending = int(acc[0][0].shape[0])
        return _concat_reduce(xp, acc), dropped

    partials = _run(sparse_partial, workers)
    dropped = functools.reduce(add_counts, (p[1] for p in partials), dict[str, int]())
    if strict:
        check_strict(dropped)
    table = _from_keys(xp, t, pairs.group_labels, *_concat_reduce(xp, [p[0] for p in partials]))
    return replace(table, dropped=dropped)


def _concat_reduce(xp: Any, parts: list[tuple[Any, Any, Any, Any]]) -> tuple[Any, Any, Any, Any]:
    if not parts:
        e = xp.zeros(0, dtype=np.int64)
        return e, e, xp.zeros(0), xp.zeros(0)
    if len(parts) == 1:
        return parts[0]
    return _reduce_by_key(xp, *(xp.concatenate([p[k] for p in parts]) for k in range(4)))


def _run(fn: Any, workers: int) -> list[Any]:
    if workers == 1:
        return [fn(0)]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, range(workers)))


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
    keys = []
    for tb in tables:
        remap = xp.asarray(np.searchsorted(labels, tb.group_labels).astype(np.int64))
        keys.append((remap[tb.group] * t + tb.prev) * t + tb.recent)
    count, s1, s2 = (xp.concatenate([getattr(tb, f) for tb in tables]) for f in ("count", "sum_y", "sum_y2"))
    sums = _reduce_by_key(xp, xp.concatenate(keys), count, s1, s2, n_keys=labels.shape[0] * t * t)
    merged = _from_keys(xp, t, labels, *sums)
    dropped: dict[str, int] = functools.reduce(add_counts, (tb.dropped for tb in tables), {})
    return replace(merged, dropped=dropped)


def _union_labels(label_sets: list[np.ndarray]) -> np.ndarray:
    try:
        return np.unique(np.concatenate(label_sets))
    except TypeError as exc:
        raise DataError(f"group labels of the tables cannot be compared ({exc})") from exc
