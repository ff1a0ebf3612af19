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


def dummy_matrix(backend: Backend, pairs: Pairs, column: np.ndarray, identified: np.ndarray) -> DesignMatrix:
    """Build the dummy matrix by column arithmetic on the backend's arrays.

    column: (G * T,) int64, the matrix column of (group g, period t) at g * T + t, or -1 where the
    period is not estimated (the base period, dropped; unidentified periods).
    identified: (G, T) bool; only valid pairs in the base period's connected component are rows.
    A row has at most two entries, so CSR comes directly from per-row counts (no COO sort).
    """
    xp = backend.xp
    t = pairs.n_periods
    valid, _ = count_invalid(xp, pairs)
    # invalid pairs may hold any period or group: clip the lookups, their rows are masked out anyway
    prev = xp.clip(pairs.prev, 0, t - 1).astype(np.int32)
    recent = xp.clip(pairs.recent, 0, t - 1).astype(np.int32)
    if pairs.group is not None:
        offset = xp.maximum(pairs.group, 0).astype(np.int32) * np.int32(t)
        prev += offset
        recent += offset
    rows = valid & xp.asarray(identified.reshape(-1))[prev]
    col = xp.asarray(column.astype(np.int32))
    m = int(xp.count_nonzero(rows))
    # interleave the earlier / later column of each row, then drop the base / unestimated ones
    entries = xp.empty(2 * m, dtype=np.int32)
    entries[0::2] = col[prev[rows]]
    entries[1::2] = col[recent[rows]]
    values = xp.empty(2 * m, dtype=np.float64)
    values[0::2] = -1.0
    values[1::2] = 1.0
    present = entries >= 0
    indptr = xp.zeros(m + 1, dtype=np.int64)
    xp.cumsum(present.reshape(m, 2).sum(axis=1), out=indptr[1:])
    # int32 indices (cupyx casts to int32 anyway): nnz <= 2 x pairs is far below 2^31 at 150M pairs
    index_type = np.int32 if 2 * m < 2**31 else np.int64
    matrix = backend.sparse.csr_matrix(
        (values[present], entries[present].astype(index_type), indptr.astype(index_type)),
        shape=(m, int((column >= 0).sum())),
    )
    return DesignMatrix(matrix, pairs.y[rows].astype(np.float64), rows)
