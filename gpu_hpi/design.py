"""The -1/+1 dummy (design) matrix of repeat-sales pairs, assembled straight into CSR form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Backend
from .pairs import Pairs, count_invalid


@dataclass(frozen=True)
class DesignMatrix:
    """matrix: (M, K) CSR, row per used pair, -1 at the earlier period's column, +1 at the later;
    y: (M,) float64 log price ratios of those pairs; rows: (N,) bool, which input pairs are used."""

    matrix: Any
    y: Any
    rows: Any


def dummy_matrix(
    backend: Backend, pairs: Pairs, column: np.ndarray, identified: np.ndarray, *, pooled: bool = False
) -> DesignMatrix:
    """Build the dummy matrix by column arithmetic on the backend's arrays.

    column: (G * T,) int64, the matrix column of (group g, period t) at g * T + t, or -1 where the
    period is not estimated (the base period, dropped; unidentified periods).
    identified: (G, T) bool; only valid pairs in the base period's connected component are rows.
    pooled: one index for all groups (column and identified then have a single group).
    A row has at most two entries, so CSR comes directly from per-row counts (no COO sort).
    """
    xp = backend.xp
    t = pairs.n_periods
    offset = 0 if pairs.group is None or pooled else pairs.group.astype(np.int64) * t
    col = xp.asarray(column)
    valid, _ = count_invalid(xp, pairs)
    # invalid pairs may hold any period: clip before the lookup, they are masked out anyway
    prev = xp.clip(pairs.prev, 0, t - 1)
    recent = xp.clip(pairs.recent, 0, t - 1)
    offset = xp.where(valid, offset, 0)
    rows = valid & xp.asarray(identified.reshape(-1))[offset + prev]
    ci = col[offset + prev][rows]
    cj = col[offset + recent][rows]
    y = pairs.y[rows].astype(np.float64)
    entries = xp.stack([ci, cj], axis=1)  # (M, 2): earlier, later column
    values = xp.stack([xp.full(ci.shape, -1.0), xp.full(cj.shape, 1.0)], axis=1)
    present = entries >= 0
    indptr = xp.concatenate([xp.zeros(1, dtype=np.int64), xp.cumsum(present.sum(axis=1))])
    # int32 indices (cupyx casts to int32 anyway): nnz <= 2 x pairs is far below 2^31 at 150M pairs
    index_type = np.int32 if int(indptr[-1]) < 2**31 else np.int64
    matrix = backend.sparse.csr_matrix(
        (values[present], entries[present].astype(index_type), indptr.astype(index_type)),
        shape=(int(y.shape[0]), int((column >= 0).sum())),
    )
    return DesignMatrix(matrix, y, rows)
