"""Repeat-sales pairs: validation (drop and count, or refuse under `strict`) and group encoding."""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..backend.core import Backend, array_namespace, as_backend
from ..errors import DataError
from .rules import DROP_REASONS, failing

__all__ = ["DROP_REASONS"]  # the reasons, in the order counted (data.rules declares them)

# Integer group ids spanning at most this range are encoded by offset + lookup (no sort or hash).
_DIRECT_GROUP_RANGE = 1 << 24
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Pairs:
    """Repeat-sales pairs as given, all arrays on one backend; invalid pairs are not removed here
    but skipped (and counted by reason) by every consumer through `valid_mask`.

    prev, recent: (N,) integer periods of the earlier and later sale;
    y: (N,) float log price ratio log(P_recent / P_prev);
    group: (N,) int16/int32 codes into `group_labels` (-1: missing), or None for a single group;
    group_labels: (G,) host array of the original group ids (sorted); n_periods: T;
    price_prev, price_recent: (N,) float sale prices, or None (needed by the arithmetic index).
    """

    prev: Any
    recent: Any
    y: Any
    group: Any
    group_labels: np.ndarray
    n_periods: int
    price_prev: Any = None
    price_recent: Any = None

    @property
    def n_pairs(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_groups(self) -> int:
        return int(self.group_labels.shape[0])

    def chunk(self, start: int, stop: int) -> Pairs:
        """The pairs [start, stop) (views, no copy)."""

        def part(a: Any) -> Any:
            return None if a is None else a[start:stop]

        return replace(
            self,
            prev=self.prev[start:stop],
            recent=self.recent[start:stop],
            y=self.y[start:stop],
            group=part(self.group),
            price_prev=part(self.price_prev),
            price_recent=part(self.price_recent),
        )


@dataclass(frozen=True)
class GroupCodes:
    """Group ids already encoded (by the device reader): codes (N,) int32 on the backend (-1:
    missing) into `labels`, (G,) sorted host ids. encode_groups takes them as they are."""

    codes: Any
    labels: np.ndarray


def pooled_pairs(pairs: Pairs) -> Pairs:
    """The same pairs as one group "ALL" (pairs with a missing group stay invalid)."""
    if pairs.group is None:
        return pairs
    xp = array_namespace(pairs.y)
    group = xp.where(pairs.group < 0, -1, 0).astype(np.int8)
    return replace(pairs, group=group, group_labels=np.asarray(["ALL"], dtype=object))


def align_groups(pairs: Pairs, labels: np.ndarray) -> Pairs:
    """The pairs with group codes into `labels` (e.g. a table's, sorted by value), whatever order
    their own labels have (categories keep theirs); DataError if a label is not among them."""
    if pairs.group is None or np.array_equal(pairs.group_labels, labels):
        return pairs
    own = np.asarray(pairs.group_labels)
    try:
        position = np.searchsorted(labels, own)
    except TypeError as exc:
        raise DataError(f"the pairs' group ids and the table's cannot be compared ({exc})") from exc
    position = np.minimum(position, max(len(labels) - 1, 0))
    if len(labels) == 0 or not np.array_equal(np.asarray(labels)[position], own):
        raise DataError("the pairs hold groups that their cell table lacks")
    xp = array_namespace(pairs.y)
    remap = xp.asarray(np.append(position, -1).astype(np.int32))  # code -1 (missing) stays -1
    group = xp.where(pairs.group < 0, -1, remap[xp.maximum(pairs.group, 0)])
    return replace(pairs, group=group, group_labels=np.asarray(labels))


def invalid_masks(xp: Any, pairs: Pairs) -> dict[str, Any]:
    """reason -> (N,) bool mask of the pairs failing it (data.rules), each mask excluding earlier reasons."""
    columns = {
        "group": pairs.group,
        "prev": pairs.prev,
        "recent": pairs.recent,
        "y": pairs.y,
        "price_prev": pairs.price_prev,
        "price_recent": pairs.price_recent,
    }
    return failing(xp, columns, pairs.n_periods)


def count_invalid(xp: Any, pairs: Pairs) -> tuple[Any, dict[str, int]]:
    """(valid mask, reason -> number of pairs dropped for it) of a chunk of pairs."""
    masks = invalid_masks(xp, pairs)
    valid = ~functools.reduce(operator.or_, masks.values())
    return valid, {k: int(xp.count_nonzero(m)) for k, m in masks.items()}


def encode_groups(backend: Backend, group: Any) -> tuple[Any, np.ndarray]:
    """Group ids -> (int16/int32 codes on the backend, sorted host labels); missing ids get code -1."""
    xp = backend.xp
    if isinstance(group, GroupCodes):
        return group.codes, group.labels
    if isinstance(group, (list, tuple)):
        group = np.asarray(group)
    if isinstance(group, (pd.Series, pd.Index, pd.Categorical)) or (
        isinstance(group, np.ndarray) and group.dtype.kind not in "iub"
    ):
        # Strings, categories or floats (possibly with NaN): pandas' hash factorisation, on the host.
        values = group if isinstance(group, (pd.Series, pd.Index, pd.Categorical)) else np.asarray(group)
        codes, labels = pd.factorize(values, sort=True, use_na_sentinel=True)
        return xp.asarray(codes.astype(np.int32)), np.asarray(labels)
    if isinstance(group, np.ndarray) and group.dtype.kind == "b":
        group = group.astype(np.int8)
    group = backend.asarray(group)
    if group.dtype.kind not in "iub":
        raise DataError(f"group ids of dtype {group.dtype} are not supported on this backend; pass integers")
    if group.size == 0:
        return xp.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    lo, hi = int(group.min()), int(group.max())
    if hi - lo >= _DIRECT_GROUP_RANGE:
        labels_dev, codes = xp.unique(group, return_inverse=True)
        return codes.astype(np.int32).reshape(-1), backend.to_host(labels_dev)
    # Integer ids in a modest range: presence by bincount, codes by a lookup table, chunk by chunk
    # so that no full-length temporary is made.
    span = hi - lo + 1
    chunks = [slice(s, s + _CHUNK) for s in range(0, group.shape[0], _CHUNK)]
    present = xp.zeros(span, dtype=bool)
    for sl in chunks:
        present |= xp.bincount(group[sl].astype(np.int64) - lo, minlength=span) > 0
    labels = backend.to_host(xp.nonzero(present)[0]).astype(np.int64) + lo
    code_type = np.int16 if labels.shape[0] < 2**15 else np.int32
    if lo == 0 and bool(present.all()) and group.dtype.itemsize <= 4 and group.dtype.kind == "i":
        return group, labels  # already codes 0..G-1
    lookup = (xp.cumsum(present) - 1).astype(code_type)
    codes = xp.empty(group.shape, dtype=code_type)
    for sl in chunks:
        codes[sl] = lookup[group[sl].astype(np.int64) - lo]
    return codes, labels


def prepare_pairs(
    prev: Any,
    recent: Any,
    y: Any,
    group: Any = None,
    *,
    n_periods: int | None = None,
    backend: Backend | str = "auto",
    price_prev: Any = None,
    price_recent: Any = None,
) -> Pairs:
    """Put raw pair arrays on the backend and encode their groups.

    n_periods defaults to max(recent) + 1. Arrays may be numpy or (GPU backend) cupy. Invalid pairs
    (missing group, period outside [0, n_periods), prev >= recent, non-finite y) stay in the arrays;
    the cell table and the dummy matrix skip them and count them by reason.
    """
    be = as_backend(backend)
    prev, recent, y = be.asarray(prev), be.asarray(recent), be.asarray(y)
    if not (prev.shape == recent.shape == y.shape) or prev.ndim != 1:
        raise DataError(
            f"prev, recent and y must be 1-d arrays of one length, got {prev.shape}, {recent.shape}, {y.shape}"
        )
    for name, arr in (("prev", prev), ("recent", recent)):
        if arr.dtype.kind not in "iu":
            raise DataError(f"{name} periods must be integers, got dtype {arr.dtype}")
    if y.dtype.kind != "f":
        raise DataError(f"y (log price ratio) must be floating point, got dtype {y.dtype}")
    if n_periods is None:
        n_periods = int(recent.max()) + 1 if recent.size else 0
    if n_periods < 2:
        raise DataError(f"need at least 2 periods, got n_periods={n_periods}")
    if (price_prev is None) != (price_recent is None):
        raise DataError("give both prices (price_prev and price_recent) or neither")
    prices: tuple[Any, Any] = (None, None)
    if price_prev is not None:
        prices = (be.asarray(price_prev, dtype=np.float64), be.asarray(price_recent, dtype=np.float64))
        if prices[0].shape != y.shape or prices[1].shape != y.shape:
            raise DataError(f"prices have shapes {prices[0].shape}, {prices[1].shape}, pairs have {y.shape}")
    if group is None:
        return Pairs(prev, recent, y, None, np.asarray(["ALL"], dtype=object), int(n_periods), *prices)
    codes, labels = encode_groups(be, group)
    if codes.shape != y.shape:
        raise DataError(f"group has shape {codes.shape}, pairs have {y.shape}")
    return Pairs(prev, recent, y, codes, labels, int(n_periods), *prices)
