"""Sums over equal integer keys (the cell table's reduction): by dense bincounts over a small key
space, else by one sort and a sum over each run of equal keys; medians of sorted segments."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..backend.ops import run_sums


def reduce_by_key(
    xp: Any, key: Any, count: Any, sums: dict[str, Any], n_keys: int | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Sum the counts and sums over equal keys; returns (sorted keys, counts, sums) of the cells
    whose count is not zero.

    With keys known to lie in [0, n_keys) (given where the caller found that space small enough),
    dense bincounts replace the sort.
    """
    if n_keys is not None:
        # float64 sums of int64 counts are exact below 2^53 pairs per cell
        counts = xp.rint(xp.bincount(key, weights=count, minlength=n_keys)).astype(np.int64)
        (keep,) = xp.nonzero(counts)
        return keep, counts[keep], {k: xp.bincount(key, weights=v, minlength=n_keys)[keep] for k, v in sums.items()}
    # the pairs in key order, then a sum over each run of equal keys (count None: one pair a row)
    order, sorted_key = key_order(xp, key)
    starts = xp.ones(sorted_key.shape, dtype=bool)
    starts[1:] = sorted_key[1:] != sorted_key[:-1]
    (first,) = xp.nonzero(starts)
    uniq = sorted_key[first]
    counts = xp.diff(first, append=key.shape[0]) if count is None else run_sums(xp, count[order], starts, first)
    totals = {k: run_sums(xp, v[order], starts, first) for k, v in sums.items()}
    counts = xp.rint(counts).astype(np.int64)
    if count is None or bool(counts.all()):  # the usual case: no cell cancelled out
        return uniq, counts, totals
    (keep,) = xp.nonzero(counts)
    return uniq[keep], counts[keep], {k: v[keep] for k, v in totals.items()}


def key_order(xp: Any, key: Any) -> tuple[Any, Any]:
    """(a permutation sorting non-negative int64 keys, the sorted keys): where the key and the
    position fit in 63 bits together, one sort of the values key << b | position (numpy sorts values
    far faster than it argsorts them), else an argsort."""
    n = int(key.shape[0])
    if n == 0:
        return xp.zeros(0, dtype=np.int64), xp.zeros(0, dtype=np.int64)
    position_bits = max(n - 1, 1).bit_length()
    if int(key.max()).bit_length() + position_bits > 63 or int(key.min()) < 0:
        order = xp.argsort(key)
        return order, key[order]
    packed = key.astype(np.int64) << position_bits
    packed |= xp.arange(n, dtype=np.int64)
    packed.sort()
    return packed & ((1 << position_bits) - 1), packed >> position_bits


def segment_medians(xp: Any, values: Any, bounds: np.ndarray) -> np.ndarray:
    """(S,) host medians of values[bounds[s]:bounds[s+1]] (NaN for an empty segment): O(n) in all
    for values sorted by segment, one selection per segment."""
    return np.array([float(xp.median(values[a:b])) if b > a else np.nan for a, b in itertools.pairwise(bounds)])
