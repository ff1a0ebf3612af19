"""The -1/+1 dummy (design) matrix of repeat-sales pairs: applied implicitly by column arithmetic,
or assembled as CSR together with the CSR of its transpose.

Row r is one used pair: -1 at the column of its earlier period, +1 at its later one. Columns are
the estimated (group, period)s; the base period and unidentified periods have none, which the
column arithmetic handles with a padding column whose coefficient is always 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend.core import Backend, array_namespace
from ..backend.ops import product_transpose, sparse_entries_limit
from ..errors import ConfigError
from . import kernels
from .pairs import Pairs, count_invalid


@dataclass(frozen=True)
class DummyColumns:
    """The used pairs by their matrix columns, which is all the dummy matrix is.

    prev, recent: (M,) int32 columns of each used pair's earlier / later period, in [0, n_columns];
    n_columns stands for a period without a column (base, unidentified). y: (M,) float64 log price
    ratios; rows: (N,) bool, which input pairs are used.
    """

    prev: Any
    recent: Any
    y: Any
    rows: Any
    n_columns: int

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.y.shape[0]), self.n_columns

    def matvec(self, x: Any) -> Any:
        """A x: x[recent] - x[prev], with x padded by the padding column's 0."""
        return kernels.pair_differences(x, self.prev, self.recent)

    def rmatvec(self, u: Any) -> Any:
        """A^T u: per column, the sum of u over the pairs ending there less over those starting there."""
        return kernels.column_sums(u, self.prev, self.recent, self.n_columns)

    def column_counts(self) -> Any:
        """(n_columns,) the squared norm of each column: the used pairs touching its period."""
        xp = array_namespace(self.prev)
        k = self.n_columns + 1
        return (xp.bincount(self.prev, minlength=k) + xp.bincount(self.recent, minlength=k))[:-1]


def dummy_columns(backend: Backend, pairs: Pairs, column: np.ndarray, identified: np.ndarray) -> DummyColumns:
    """The used pairs' columns by column arithmetic on the backend's arrays.

    column: (G * T,) int64, the matrix column of (group g, period t) at g * T + t, or -1 where the
    period is not estimated (the base period; unidentified periods).
    identified: (G, T) bool; only valid pairs in the base period's connected component are rows.
    """
    xp = backend.xp
    t = pairs.n_periods
    n_columns = int((column >= 0).sum())
    valid, _ = count_invalid(xp, pairs)
    # invalid pairs may hold any period or group: clip the lookups, their rows are dropped anyway
    prev = xp.clip(pairs.prev, 0, t - 1).astype(np.int32)
    recent = xp.clip(pairs.recent, 0, t - 1).astype(np.int32)
    if pairs.group is not None:
        offset = xp.maximum(pairs.group, 0).astype(np.int32) * np.int32(t)
        prev += offset
        recent += offset
    rows = valid & xp.asarray(identified.reshape(-1))[prev]
    col = xp.asarray(np.where(column >= 0, column, n_columns).astype(np.int32))
    return DummyColumns(col[prev[rows]], col[recent[rows]], pairs.y[rows].astype(np.float64), rows, n_columns)


@dataclass(frozen=True)
class DesignMatrix:
    """matrix: (M, K) CSR, row per used pair, -1 at the earlier period's column, +1 at the later;
    transpose: (K, M) its transpose in the form the backend multiplies fastest; y: (M,) float64 log
    price ratios of those pairs; rows: (N,) bool, which input pairs are used."""

    matrix: Any
    transpose: Any
    y: Any
    rows: Any


def design_matrix(backend: Backend, columns: DummyColumns) -> DesignMatrix:
    """The explicit CSR matrix of `columns` and its transpose. A row has at most two entries, so
    CSR comes directly from per-row counts (no COO sort). The transpose: on the device a CSR of its
    own (cuSPARSE's conversion), as cuSPARSE's transposed product is slow; on the host SciPy's CSC
    view of the same arrays, whose product is one sequential pass where a CSR of the transpose
    gathers at random."""
    xp = backend.xp
    m, k = columns.shape
    limit = sparse_entries_limit(xp)
    if limit is not None and 2 * m > limit:
        raise ConfigError(
            f"solver.operator=matrix holds at most {limit:,} entries on the GPU ({m:,} pairs make {2 * m:,}); "
            "use solver.operator=implicit"
        )
    # interleave the earlier / later column of each row, then drop the padding ones
    entries = xp.empty(2 * m, dtype=np.int32)
    entries[0::2] = columns.prev
    entries[1::2] = columns.recent
    values = xp.empty(2 * m, dtype=np.float64)
    values[0::2] = -1.0
    values[1::2] = 1.0
    present = entries < k
    indptr = xp.zeros(m + 1, dtype=np.int64)
    xp.cumsum(present.reshape(m, 2).sum(axis=1), out=indptr[1:])
    # int32 indices: nnz <= 2 x pairs is far below 2^31 at 150M pairs
    index_type = np.int32 if 2 * m < 2**31 else np.int64
    matrix = backend.sparse.csr_matrix(
        (values[present], entries[present].astype(index_type), indptr.astype(index_type)), shape=(m, k)
    )
    return DesignMatrix(matrix, product_transpose(xp, matrix), columns.y, columns.rows)


def dummy_matrix(backend: Backend, pairs: Pairs, column: np.ndarray, identified: np.ndarray) -> DesignMatrix:
    """The explicit dummy matrix of `pairs` (see `dummy_columns` for the arguments)."""
    return design_matrix(backend, dummy_columns(backend, pairs, column, identified))
