"""Cholesky solves of stacks of small symmetric positive definite systems on the host, with the GIL
released, so that a thread per core factors its own systems.

SciPy's `scipy.linalg.lapack` wrappers hold the GIL, so threads calling them ran one at a time.
Here the same LAPACK routines are called through SciPy's Cython LAPACK (`scipy.linalg.cython_lapack`,
its public low-level API: one function pointer per routine) by ctypes, which releases the GIL for
each call. Measured by `python -m benchmarks --sizes 10M --cases regions` (BENCHMARKS.md).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np

_INT = ctypes.POINTER(ctypes.c_int)
_SIGNATURES = {  # Fortran calling convention: every argument by pointer
    "dpotrf": (ctypes.c_char_p, _INT, ctypes.c_void_p, _INT, _INT),
    "dpotrs": (ctypes.c_char_p, _INT, _INT, ctypes.c_void_p, _INT, ctypes.c_void_p, _INT, _INT),
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


def cholesky_solve(lap: np.ndarray, rhs: np.ndarray | None, covariance: bool) -> tuple[Any, Any]:
    """(solutions of lap x = rhs, or None without rhs; diagonals of lap^-1, or None) for a C-contiguous
    (B, T, T) float64 stack, which is overwritten. One Cholesky factor (potrf) serves the solve
    (potrs) and the inverse (potri); a system whose factorisation fails (not numerically positive
    definite) is solved by LU, rebuilt from its untouched strict lower triangle and its diagonal
    (which potrf overwrites up to the failing column)."""
    routines = _routines()
    b, t, _ = lap.shape
    solved = None if rhs is None else np.array(rhs, dtype=np.float64, order="C")
    diag = np.empty((b, t)) if covariance else None
    n, one, info = ctypes.c_int(t), ctypes.c_int(1), ctypes.c_int(0)
    n_ref, one_ref, info_ref = ctypes.byref(n), ctypes.byref(one), ctypes.byref(info)
    # "L" in Fortran's column-major view: the upper triangle of each C-ordered system is used and
    # overwritten, the strict lower triangle is kept
    for k in range(b):
        a = lap[k]
        diagonal = a.diagonal().copy()
        routines["dpotrf"](b"L", n_ref, a.ctypes.data, n_ref, info_ref)
        if info.value != 0:
            lower = np.tril(a, -1)
            original = lower + lower.T + np.diag(diagonal)
            if solved is not None:
                solved[k] = np.linalg.solve(original, solved[k])
            if diag is not None:
                diag[k] = np.diagonal(np.linalg.inv(original))
            continue
        if solved is not None:
            routines["dpotrs"](b"L", n_ref, one_ref, a.ctypes.data, n_ref, solved[k].ctypes.data, n_ref, info_ref)
        if diag is not None:
            routines["dpotri"](b"L", n_ref, a.ctypes.data, n_ref, info_ref)
            diag[k] = np.diagonal(a)
    return solved, diag
