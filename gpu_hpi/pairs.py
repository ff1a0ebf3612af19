"""Repeat-sales pairs: validation (drop and count, or refuse under `strict`) and group encoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .backend import Backend, as_backend
from .errors import DataError

# Reasons a pair is dropped, in the order they are tested: a pair failing several is counted once,
# under the first.
DROP_REASONS = ("missing_group", "period_out_of_range", "prev_not_before_recent", "nonfinite_y")
# Integer group ids spanning at most this range are encoded by offset + lookup (no sort or hash).
_DIRECT_GROUP_RANGE = 1 << 24


@dataclass(frozen=True)
class Pairs:
    """Validated repeat-sales pairs, all arrays on one backend.

    group: (N,) int32 codes into `group_labels`, or None when there is a single group;
    prev, recent: (N,) integer periods with 0 <= prev < recent < n_periods;
    y: (N,) float log price ratio log(P_recent / P_prev), finite.
    group_labels: (G,) host array of the original group ids (sorted).
    dropped: reason -> number of pairs dropped for it.
    """

    prev: Any
    recent: Any
    y: Any
    group: Any
    group_labels: np.ndarray
    n_periods: int
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_groups(self) -> int:
        return int(self.group_labels.shape[0])

    @property
    def n_read(self) -> int:
        return self.n_pairs + sum(self.dropped.values())


def encode_groups(backend: Backend, group: Any) -> tuple[Any, np.ndarray]:
    """Group ids -> (int32 codes on the backend, sorted host labels); missing ids get code -1."""
    xp = backend.xp
    if isinstance(group, (pd.Series, pd.Index, pd.Categorical)) or (
        isinstance(group, np.ndarray) and group.dtype.kind not in "iub"
    ):
        # Strings, categories or floats (possibly with NaN): pandas' hash factorisation, on the host.
        codes, labels = pd.factorize(np.asarray(group), sort=True, use_na_sentinel=True)
        return xp.asarray(codes.astype(np.int32)), np.asarray(labels)
    group = xp.asarray(group)
    if group.dtype.kind not in "iub":
        raise DataError(f"group ids of dtype {group.dtype} are not supported on this backend; pass integers")
    if group.size == 0:
        return xp.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    lo, hi = int(group.min()), int(group.max())
    if hi - lo < _DIRECT_GROUP_RANGE:
        offset = (group - lo).astype(np.int32)
        present = xp.bincount(offset, minlength=hi - lo + 1) > 0
        lookup = (xp.cumsum(present) - 1).astype(np.int32)
        labels = backend.to_host(xp.nonzero(present)[0]).astype(np.int64) + lo
        return lookup[offset], labels
    labels_dev, codes = xp.unique(group, return_inverse=True)
    return codes.astype(np.int32).reshape(-1), backend.to_host(labels_dev)


def prepare_pairs(
    prev: Any,
    recent: Any,
    y: Any,
    group: Any = None,
    *,
    n_periods: int | None = None,
    backend: Backend | str = "auto",
    strict: bool = False,
) -> Pairs:
    """Validate raw pair arrays: pairs with a missing group, a period outside [0, n_periods),
    prev >= recent or a non-finite y are dropped and counted by reason (`strict=True`: DataError).

    n_periods defaults to max(recent) + 1. Arrays may be numpy or (on the GPU backend) cupy.
    """
    be = as_backend(backend)
    xp = be.xp
    prev, recent, y = xp.asarray(prev), xp.asarray(recent), xp.asarray(y)
    if not (prev.shape == recent.shape == y.shape) or prev.ndim != 1:
        raise DataError(f"prev, recent and y must be 1-d arrays of one length, got {prev.shape}, {recent.shape}, {y.shape}")
    for name, arr in (("prev", prev), ("recent", recent)):
        if arr.dtype.kind not in "iu":
            raise DataError(f"{name} periods must be integers, got dtype {arr.dtype}")
    if y.dtype.kind != "f":
        y = y.astype(np.float64)
    if n_periods is None:
        n_periods = int(recent.max()) + 1 if recent.size else 0
    if n_periods < 2:
        raise DataError(f"need at least 2 periods, got n_periods={n_periods}")
    if group is None:
        codes, labels = None, np.asarray(["ALL"], dtype=object)
    else:
        codes, labels = encode_groups(be, group)
        if codes.shape != y.shape:
            raise DataError(f"group has shape {codes.shape}, pairs have {y.shape}")

    tests = {
        "missing_group": None if codes is None else codes < 0,
        "period_out_of_range": (prev < 0) | (prev >= n_periods) | (recent < 0) | (recent >= n_periods),
        "prev_not_before_recent": prev >= recent,
        "nonfinite_y": ~xp.isfinite(y),
    }
    keep = xp.ones(y.shape, dtype=bool)
    dropped: dict[str, int] = {}
    for reason in DROP_REASONS:
        bad = tests[reason]
        if bad is None:
            continue
        count = int(xp.count_nonzero(bad & keep))
        if count:
            dropped[reason] = count
            keep &= ~bad
    if dropped and strict:
        detail = ", ".join(f"{k}={v}" for k, v in dropped.items())
        raise DataError(f"invalid pairs under strict mode: {detail}")
    if dropped:
        prev, recent, y = prev[keep], recent[keep], y[keep]
        codes = None if codes is None else codes[keep]
    return Pairs(prev, recent, y, codes, labels, int(n_periods), dropped)
