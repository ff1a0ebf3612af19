"""Cholesky solves of stacks of small symmetric positive definite systems on the host, with the GIL
released, so that a thread per core factors its own systems.

SciPy's `scipy.linalg.lapack` wrappers hold the GIL, so threads calling them ran one at a time.
Here the same LAPACK routines are called through SciPy's Cython LAPACK (`scipy.linalg.cython_lapack`,
its public low-level API: one function pointer per routine) by ctypes, which releases the GIL for
each call. Measured by `python -m benchmarks --sizes 10M --cases regions` (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from typing import Any

import numpy as np

_INT = ctypes.POINTER(ctypes.c_int)
_SIGNATURES = {  # Fortran calling convention: every argument by pointer
    "dlacpy": (ctypes.c_char_p, _INT, _INT, ctypes.c_void_p, _INT, ctypes.c_void_p, _INT),
    "dpotrf": (ctypes.c_char_p, _INT, ctypes.c_void_p, _INT, _INT),
    "dposv": (ctypes.c_char_p, _INT, _INT, ctypes.c_void_p, _INT, ctypes.c_void_p, _INT, _INT),
    "dpotri": (ctypes.c_char_p, _INT, ctypes.c_void_p, _INT, _INT),
}


@functools.cache
def _routines() -> dict[str, Any]:
    from scipy.linalg import cython_lapack

    capsules = cython_lapack.__pyx_capi__
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return {
        routine: ctypes.CFUNCTYPE(None, *args)(pointer(capsules[routine], name(capsules[routine])))
        for routine, args in _SIGNATURES.items()
    }


@functools.cache
def _blas() -> Any:
    """threadpoolctl's handle on the BLAS libraries loaded (numpy's, and SciPy's, which
    `cholesky_solve` calls), found once: finding them walks every shared library of the process."""
    import scipy.linalg  # noqa: F401  (its BLAS loaded before the walk)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS and LAPACK single-threaded while it lasts, process-wide: on (T, T) systems of a few
    hundred periods at most, BLAS threads cost more to start and join than they save, and far
    more where the cores are busy (the revision study's thousands of small solves, BENCHMARKS.md)."""
    return _blas().limit(limits=1)


def cholesky_solve(lap: np.ndarray, rhs: np.ndarray | None, covariance: bool) -> tuple[Any, Any]:
    """(solutions of lap x = rhs, or None without rhs; diagonals of lap^-1, or None) for a C-contiguous
    (B, T, T) float64 stack, which is overwritten. One Cholesky factor serves the solve (posv:
    potrf and potrs in one call, each call releasing and taking back the GIL) and the inverse
    (potri); a system whose factorisation fails (not numerically positive definite) is solved by
    LU, rebuilt from its untouched strict lower triangle and its diagonal (which potrf overwrites
    up to the failing column)."""
    routines = _routines()
    b, t, _ = lap.shape
    solved = None if rhs is None else np.array(rhs, dtype=np.float64, order="C")
    diag = np.empty((b, t)) if covariance else None
    n, one, info = ctypes.c_int(t), ctypes.c_int(1), ctypes.c_int(0)
    n_ref, one_ref, info_ref = ctypes.byref(n), ctypes.byref(one), ctypes.byref(info)
    diagonals = np.diagonal(lap, axis1=1, axis2=2).copy()
    # each system's address as an offset: an ndarray.ctypes per system took 10-30% more time on the
    # revision study's 2,200 small systems
    lap_at, solved_at = lap.ctypes.data, 0 if solved is None else solved.ctypes.data
    # "L" in Fortran's column-major view: the upper triangle of each C-ordered system is used and
    # overwritten, the strict lower triangle is kept
    for k in range(b):
        a = lap_at + k * lap.strides[0]
        if solved is None:
            routines["dpotrf"](b"L", n_ref, a, n_ref, info_ref)
        else:  # dposv: dpotrf, then dpotrs with the factor, in one call
            routines["dposv"](b"L", n_ref, one_ref, a, n_ref, solved_at + k * solved.strides[0], n_ref, info_ref)
        if info.value != 0:  # the right-hand side is untouched where the factorisation failed
            lower = np.tril(lap[k], -1)
            original = lower + lower.T + np.diag(diagonals[k])
            if solved is not None:
                solved[k] = np.linalg.solve(original, solved[k])
            if diag is not None:
                diag[k] = np.diagonal(np.linalg.inv(original))
            continue
        if diag is not None:
            routines["dpotri"](b"L", n_ref, a, n_ref, info_ref)
            diag[k] = np.diagonal(lap[k])
    return solved, diag


def copy_solve(lap: np.ndarray, systems: np.ndarray, size: int, rhs: np.ndarray) -> None:
    """Solve each system lap[systems[i], :size, :size] x = rhs[i] in place in rhs (C-contiguous),
    lap untouched: each system copied into one small buffer (LAPACK's dlacpy) and solved there by
    Cholesky (dposv), as cholesky_solve does on a stack of copies. One system at
    a time, so that the copy and the factorisation stay in the core's cache: copying all the
    batch's systems for each vintage first moved 16 MB through memory per vintage and batch,
    15-20% of the time. A system that is not numerically positive definite is solved by LU."""
    dlacpy, dposv = _routines()["dlacpy"], _routines()["dposv"]
    work = np.empty((size, size))
    n, ld, one, info = ctypes.c_int(size), ctypes.c_int(lap.shape[2]), ctypes.c_int(1), ctypes.c_int(0)
    n_ref, ld_ref, one_ref, info_ref = (ctypes.byref(x) for x in (n, ld, one, info))
    lap_at, work_at, rhs_at = lap.ctypes.data, work.ctypes.data, rhs.ctypes.data
    lap_step, rhs_step = lap.strides[0], rhs.strides[0]
    for i, g in enumerate(systems.tolist()):
        # only the triangle dposv reads (Fortran's lower, the C-ordered upper): half the copy
        dlacpy(b"L", n_ref, n_ref, lap_at + g * lap_step, ld_ref, work_at, n_ref)
        dposv(b"L", n_ref, one_ref, work_at, n_ref, rhs_at + i * rhs_step, n_ref, info_ref)
        if info.value != 0:  # the right-hand side is untouched where the factorisation failed
            rhs[i] = np.linalg.solve(lap[g, :size, :size], rhs[i])
