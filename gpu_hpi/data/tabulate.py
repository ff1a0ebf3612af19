"""The cell table of pairs in one pass (data.cells' CellTable): chunks of pairs reduced by dense
bincounts where the key space is small (data.cells.dense_keys), else by sorting their keys; on the
GPU the fused kernel (data/kernels.py); on the CPU a thread per core."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from ..backend.core import Backend, as_backend
from . import kernels
from .cells import PRICE_SUMS, Y_SUMS, CellTable, cell_key, dense_keys, from_keys
from .keys import reduce_by_key
from .pairs import Pairs, count_invalid
from .rules import add_counts, check_strict

# pairs per chunk on the CPU: temporaries of a few MB are recycled by the allocator, where 4M-pair
# chunks (32 MB arrays) went back to the OS each time and cost more in page faults than in arithmetic
CPU_CHUNK = 1 << 19
CHUNK_ROWS = {"cpu": CPU_CHUNK, "gpu": 1 << 28}  # by backend
# pairs gathered (key and sums: ~32 bytes each) before the sparse table sorts them into cells
SPARSE_FOLD_ROWS = 1 << 24


def _chunk_values(xp: Any, pairs: Pairs, start: int, stop: int) -> tuple[Any, dict[str, Any], Any, dict[str, int]]:
    """Cell keys (int64), per-pair values to sum (float64), valid mask and drop counts of
    pairs[start:stop]. Invalid pairs keep a (meaningless) key and zero values; callers mask or
    bucket them away."""
    chunk = pairs.chunk(start, stop)
    valid, dropped = count_invalid(xp, chunk)
    t = pairs.n_periods
    key = cell_key(chunk.group, chunk.prev, chunk.recent, t)
    y = xp.where(valid, chunk.y, 0.0).astype(np.float64, copy=False)
    values = {"y": y, "y2": y * y}
    if chunk.price_prev is not None:
        p0 = xp.where(valid, chunk.price_prev, 0.0).astype(np.float64, copy=False)
        p1 = xp.where(valid, chunk.price_recent, 0.0).astype(np.float64, copy=False)
        values.update(p_prev=p0, p_recent=p1, p_prev2=p0 * p0, p_recent2=p1 * p1, p_cross=p0 * p1)
    return key, values, valid, dropped


def build_cell_table(
    pairs: Pairs,
    backend: Backend | str,
    *,
    chunk_size: int | None = None,
    strict: bool = False,
    threads: int | None = None,
) -> CellTable:
    """One pass over pairs -> their cell table, on the pairs' backend.

    Invalid pairs (see `pairs.invalid_masks`) are left out and counted by reason in
    `table.dropped`; with `strict=True` any of them raises DataError instead.
    Pairs are processed in chunks so that temporaries stay O(chunk) beyond the input arrays;
    on the CPU the chunks are shared by a thread per core (numpy releases the GIL in bincount),
    or by `threads` threads. `backend`: a Backend or its name, as `prepare_pairs` takes it.
    """
    backend = as_backend(backend)
    xp = backend.xp
    t, n = pairs.n_periods, pairs.n_pairs
    n_keys = pairs.n_groups * t * t
    chunk = chunk_size or CHUNK_ROWS[backend.name]
    starts = list(range(0, n, chunk))
    workers = backend.workers(len(starts), threads)
    names = Y_SUMS + (PRICE_SUMS if pairs.price_prev is not None else ())

    if kernels.applies(backend, pairs, dense_keys(n_keys) is not None):
        cnt, s1, s2, dropped = kernels.fused_cell_sums(
            pairs.prev, pairs.recent, pairs.y, pairs.group, t, pairs.n_groups
        )
        if strict:
            check_strict(dropped)
        (nonzero,) = np.nonzero(cnt)  # on the host: the kernel's dense table comes back whole
        table = from_keys(np, t, pairs.group_labels, nonzero, cnt[nonzero], {"y": s1[nonzero], "y2": s2[nonzero]})
        return replace(table, dropped=dropped).to_backend(backend)

    if dense_keys(n_keys) is not None:

        def dense_partial(worker: int) -> tuple[Any, dict[str, Any], dict[str, int]]:
            # invalid pairs go to an extra bucket n_keys, cut off at the end (no compaction copy)
            cnt = xp.zeros(n_keys + 1, dtype=np.int64)
            sums = {k: xp.zeros(n_keys + 1, dtype=np.float64) for k in names}
            dropped: dict[str, int] = {}
            for start in starts[worker::workers]:
                key, values, valid, bad = _chunk_values(xp, pairs, start, min(start + chunk, n))
                key = xp.where(valid, key, n_keys)
                dropped = add_counts(dropped, bad)
                cnt += xp.bincount(key, minlength=n_keys + 1)
                for k in names:
                    sums[k] += xp.bincount(key, weights=values[k], minlength=n_keys + 1)
            return cnt[:n_keys], {k: v[:n_keys] for k, v in sums.items()}, dropped

        partials = _run(dense_partial, workers)
        cnt, sums, dropped = partials[0]
        for p in partials[1:]:
            cnt, dropped = cnt + p[0], add_counts(dropped, p[2])
            sums = {k: v + p[1][k] for k, v in sums.items()}
        if strict:
            check_strict(dropped)
        (nonzero,) = xp.nonzero(cnt)
        table = from_keys(xp, t, pairs.group_labels, nonzero, cnt[nonzero], {k: v[nonzero] for k, v in sums.items()})
        return replace(table, dropped=dropped)

    # sparse: the valid pairs' keys and values gathered chunk by chunk, then sorted and reduced at
    # once (most cells hold one pair: reducing each chunk, and merging the workers' tables, sorted
    # the same keys again and again); one thread, since the sort dominates, and a fold past
    # SPARSE_FOLD_ROWS bounds the memory
    acc: list[tuple[Any, Any, dict[str, Any]]] = []
    pending = folded = 0
    lost: dict[str, int] = {}
    for start in starts:
        key, values, valid, bad = _chunk_values(xp, pairs, start, min(start + chunk, n))
        lost = add_counts(lost, bad)
        acc.append((key[valid], None, {k: values[k][valid] for k in names}))
        pending += int(acc[-1][0].shape[0])
        if pending > max(SPARSE_FOLD_ROWS, folded):
            acc = [_concat_reduce(xp, acc, names)]
            folded, pending = int(acc[0][0].shape[0]), 0
    if strict:
        check_strict(lost)
    table = from_keys(xp, t, pairs.group_labels, *_concat_reduce(xp, acc, names))
    return replace(table, dropped=lost)


def _concat_reduce(
    xp: Any, parts: list[tuple[Any, Any, dict[str, Any]]], names: tuple[str, ...]
) -> tuple[Any, Any, dict[str, Any]]:
    """One table of the parts (keys, counts or None for one pair a row, sums), reduced by key."""
    if not parts:
        return xp.zeros(0, dtype=np.int64), xp.zeros(0, dtype=np.int64), {k: xp.zeros(0) for k in names}
    key = xp.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    count = None
    if any(p[1] is not None for p in parts):
        count = xp.concatenate([xp.ones(p[0].shape[0], dtype=np.int64) if p[1] is None else p[1] for p in parts])
    sums = {k: xp.concatenate([p[2][k] for p in parts]) if len(parts) > 1 else parts[0][2][k] for k in names}
    return reduce_by_key(xp, key, count, sums)


def _run(fn: Any, workers: int) -> list[Any]:
    if workers == 1:
        return [fn(0)]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, range(workers)))
