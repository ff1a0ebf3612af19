"""The few operations that numpy and CuPy each do best in their own way, chosen here by the array
namespace so that the numerical code above stays one path: batched solves of small symmetric
positive definite systems, sums over runs of sorted keys, the host BLAS's thread limit, and the
sparse transpose whose product is fast."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from .lapack import cholesky_solve, one_blas_thread

# cupyx.scipy.sparse keeps int32 indices whatever it is given: at most this many stored entries
DEVICE_SPARSE_ENTRIES = 2**31 - 1


def solve_spd(xp: Any, lap: Any, rhs: Any, covariance: bool) -> tuple[Any, Any]:
    """(solutions of lap x = rhs or None without rhs, diagonals of lap^-1 or None) for a (B, T, T)
    stack of symmetric positive definite systems, overwritten. The index by a solve: an inverse
    times the right-hand side lost digits on the nearly singular systems that extreme Case-Shiller
    weights make. On the host one Cholesky factor per system serves both, a third of the flops of
    an LU inverse, with the GIL released (`backend.lapack`); on the device CuPy's batched solve
    and inverse."""
    if xp is not np:
        solved = None if rhs is None else xp.linalg.solve(lap, rhs[:, :, None])[:, :, 0]
        return solved, (xp.diagonal(xp.linalg.inv(lap), axis1=1, axis2=2) if covariance else None)
    return cholesky_solve(np.ascontiguousarray(lap, dtype=np.float64), rhs, covariance)


def single_thread_blas(xp: Any) -> contextlib.AbstractContextManager[Any]:
    """The host's BLAS single-threaded while it lasts, for host arrays (threads of their own do the
    parallel work); for device arrays nothing, so a device run need not load SciPy's BLAS."""
    return one_blas_thread() if xp is np else contextlib.nullcontext()


def run_sums(xp: Any, values: Any, starts: Any, first: Any) -> Any:
    """Sums of `values` (already in key order) over each run of equal keys; `starts`: where a run
    starts (a mask), `first`: those positions. On the host a sequential sum per run (numpy's
    reduceat); on the device, which has none, a bincount by run number."""
    if xp is np:
        return np.add.reduceat(values, first) if first.size else np.zeros(0, dtype=values.dtype)
    return xp.bincount(xp.cumsum(starts) - 1, weights=values, minlength=first.shape[0])


def sparse_entries_limit(xp: Any) -> int | None:
    """The most entries a sparse matrix of this namespace holds (None: no limit that matters here)."""
    return None if xp is np else DEVICE_SPARSE_ENTRIES


def product_transpose(xp: Any, matrix: Any) -> Any:
    """The transpose of a CSR matrix in the form whose product is fast: on the host SciPy's CSC
    view of the same arrays, whose product is one sequential pass (a CSR of the transpose gathers
    at random); on the device a CSR of its own (cuSPARSE's conversion), as cuSPARSE's transposed
    product is slow."""
    return matrix.T if xp is np else matrix.T.tocsr()
