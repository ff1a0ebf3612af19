"""LSQR and LSMR on the dummy matrix of the pairs, for every group at once.

The matrix is block diagonal (a column per estimated (group, period)), so one solve is exactly
the stack of the per-group problems, at the cost of two products a step over all pairs. The
products come from `data.design`: applied implicitly (a gather and a sum per column: no matrix is
stored; the default on the GPU), or through the assembled sparse matrix and its transpose (the
default on the CPU). The
columns are scaled to unit norm (Jacobi: 1 / sqrt of the pairs touching each period), which
evens out periods with many and few sales and so cuts the steps needed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend.core import Backend
from ..data.design import DummyColumns, design_matrix, dummy_columns
from ..data.pairs import Pairs
from ..errors import ConfigError, ConvergenceWarning
from ..options import SolverOperator
from .identify import Identification

OPERATORS: tuple[str, ...] = tuple(o.value for o in SolverOperator)
# operator=auto by backend: implicit on the device (no matrix in its memory), the matrix on the host
AUTO_OPERATOR = {"gpu": "implicit", "cpu": "matrix"}
# atol = btol: the index then equals the exact solve's to ~1e-13 at 150M pairs, where 1e-12 left
# 2.9e-11 at 10M and 1e-10 left 3e-9 (BENCHMARKS.md)
DEFAULT_TOL = 1e-13
LSQR_STOP_REASONS = {
    0: "x = 0 is the exact solution",
    1: "Ax - b small enough (btol)",
    2: "least-squares solution found (atol)",
    3: "condition number exceeded conlim",
    4: "Ax - b small enough (machine precision)",
    5: "least-squares solution found (machine precision)",
    6: "condition number too large for machine precision",
    7: "iteration limit reached",
}


def default_iter_lim(n_columns: int) -> int:
    """Iteration limit of lsqr and lsmr unless given: ample for these well-conditioned Laplacians."""
    return max(2 * n_columns, 100)


def check_limits(tol: float, iter_lim: int | None) -> None:
    """Refuse a tolerance outside (0, 1) (at 1 or more lsqr and lsmr stop at once, at 0 or less only
    at the iteration limit) and an iteration limit below 1 (the limit's default is None)."""
    if not 0 < tol < 1:
        raise ConfigError(f"solver.tol must be between 0 and 1, got {tol}")
    if iter_lim is not None and iter_lim < 1:
        raise ConfigError(f"solver.iter_lim must be at least 1 (or null for its default), got {iter_lim}")


@dataclass(frozen=True)
class ScaledOperator:
    """A D for an (M, K) operator A given by its products and a (K,) column scale D."""

    shape: tuple[int, int]
    product: Callable[[Any], Any]  # x -> A x
    adjoint: Callable[[Any], Any]  # u -> A^T u
    scale: Any

    def matvec(self, z: Any) -> Any:
        return self.product(self.scale * z.reshape(-1))

    def rmatvec(self, u: Any) -> Any:
        return self.scale * self.adjoint(u.reshape(-1))


def pair_operator(
    backend: Backend, columns: DummyColumns, operator: str = "auto", scale: bool = True
) -> ScaledOperator:
    """The dummy matrix of `columns` as an operator: "implicit" (column arithmetic), "matrix" (sparse
    matrix products) or "auto": implicit on the device (no matrix in its memory), the matrix on the
    host (SciPy's CSR and CSC products beat numpy's gathers and bincounts); with scale, columns
    scaled to unit norm."""
    xp = backend.xp
    if operator == "auto":
        operator = AUTO_OPERATOR[backend.name]
    counts = columns.column_counts().astype(np.float64)
    d = 1.0 / xp.sqrt(xp.maximum(counts, 1.0)) if scale else xp.ones(columns.n_columns)
    if operator == "implicit":
        return ScaledOperator(columns.shape, columns.matvec, columns.rmatvec, d)
    if operator == "matrix":
        design = design_matrix(backend, columns)
        return ScaledOperator(columns.shape, design.matrix.dot, design.transpose.dot, d)
    raise ValueError(f"operator must be one of {list(OPERATORS)}, got {operator!r}")


@dataclass(frozen=True)
class IterativeSolution:
    """x: (n,) solution; iterations; istop: stop code (LSQR_STOP_REASONS); residual_norm: ||b - Ax||."""

    x: Any
    iterations: int
    istop: int
    residual_norm: float


def lsqr(
    xp: Any,
    a: Any,
    b: Any,
    *,
    atol: float = 1e-10,
    btol: float = 1e-10,
    conlim: float = 1e8,
    iter_lim: int | None = None,
) -> IterativeSolution:
    """LSQR (Paige & Saunders 1982) for min ||Ax - b|| with a rectangular A given by its products
    (`a.matvec`, `a.rmatvec`: an operator, or a sparse matrix), written against the array namespace
    (cupyx's `lsqr` solves square systems only). Stopping rules as SciPy's. The long vectors are
    updated in place: one M-vector temporary a step beside u."""
    matvec = a.matvec if hasattr(a, "matvec") else a.dot
    rmatvec = a.rmatvec if hasattr(a, "rmatvec") else a.T.dot
    n = a.shape[1]
    iter_lim = iter_lim or default_iter_lim(n)
    eps = float(np.finfo(np.float64).eps)
    x = xp.zeros(n)
    u = b.astype(np.float64, copy=True)
    beta = float(xp.linalg.norm(u))
    bnorm = beta
    v = xp.zeros(n)
    alfa = 0.0
    if beta > 0:
        u *= 1.0 / beta  # reciprocals, as SciPy: the same iterates to the last bit
        v = rmatvec(u)
        alfa = float(xp.linalg.norm(v))
    if alfa > 0:
        v *= 1.0 / alfa
    w = v.copy()
    if alfa * beta == 0:
        return IterativeSolution(x, 0, 0, beta)
    rhobar, phibar = alfa, beta
    anorm = ddnorm = 0.0
    rnorm = beta
    ctol = 1.0 / conlim if conlim > 0 else 0.0
    istop, itn = 7, 0
    while itn < iter_lim:
        itn += 1
        u *= -alfa
        u += matvec(v)
        beta = float(xp.linalg.norm(u))
        if beta > 0:
            u *= 1.0 / beta
            anorm = math.sqrt(anorm**2 + alfa**2 + beta**2)
            v = rmatvec(u) - beta * v
            alfa = float(xp.linalg.norm(v))
            if alfa > 0:
                v *= 1.0 / alfa
        rho = math.hypot(rhobar, beta)
        cs, sn = rhobar / rho, beta / rho
        theta = sn * alfa
        rhobar = -cs * alfa
        phi = cs * phibar
        phibar = sn * phibar
        tau = sn * phi
        ddnorm += float(xp.linalg.norm(w)) ** 2 / rho**2
        x = x + (phi / rho) * w
        w = v - (theta / rho) * w
        xnorm = float(xp.linalg.norm(x))
        rnorm = phibar
        arnorm = alfa * abs(tau)
        acond = anorm * math.sqrt(ddnorm)
        test1 = rnorm / bnorm
        test2 = arnorm / (anorm * rnorm + eps) if rnorm > 0 else 0.0
        test3 = 1.0 / (acond + eps)
        rtol = btol + atol * anorm * xnorm / bnorm
        t1 = test1 / (1 + anorm * xnorm / bnorm)
        # as SciPy: the user's tolerances (1-3) take precedence over the machine-precision codes (4-6)
        codes = [
            (1 + test3 <= 1, 6),
            (1 + test2 <= 1, 5),
            (1 + t1 <= 1, 4),
            (test3 <= ctol, 3),
            (test2 <= atol, 2),
            (test1 <= rtol, 1),
        ]
        met = [code for hit, code in codes if hit]
        if met:
            istop = met[-1]
            break
    return IterativeSolution(x, itn, istop, rnorm)


def estimated_columns(ident: Identification) -> tuple[np.ndarray, int]:
    """((G * T,) int64 matrix column of each (group, period) at g * T + t, -1 where the period is
    not estimated; the number of columns), in (group, period) order."""
    est = ident.estimated.reshape(-1)
    column = np.full(est.shape[0], -1, dtype=np.int64)
    column[est] = np.arange(int(est.sum()))
    return column, int(est.sum())


def iterative_beta(
    pairs: Pairs,
    ident: Identification,
    backend: Backend,
    solver: str,
    *,
    tol: float = DEFAULT_TOL,
    iter_lim: int | None = None,
    operator: str = "auto",
    scale: bool = True,
) -> tuple[np.ndarray, int, str]:
    """Solve the dummy-matrix least squares of all groups at once with LSQR or LSMR.

    Returns (beta (G, T) with zeros where not estimated, iterations, stop reason).
    """
    xp = backend.xp
    g, t = ident.identified.shape
    est = ident.estimated
    column, n_columns = estimated_columns(ident)
    x = xp.zeros(0)
    iterations, istop = 0, 0
    if n_columns:
        columns = dummy_columns(backend, pairs, column, ident.identified)
        op = pair_operator(backend, columns, operator, scale)
        iter_lim = iter_lim or default_iter_lim(n_columns)
        if solver == "lsqr":
            sol = lsqr(xp, op, columns.y, atol=tol, btol=tol, iter_lim=iter_lim)
            z, iterations, istop = sol.x, sol.iterations, sol.istop
        elif solver == "lsmr":
            linear = backend.sparse_linalg.LinearOperator(
                op.shape, matvec=op.matvec, rmatvec=op.rmatvec, dtype=np.float64
            )
            res = backend.sparse_linalg.lsmr(linear, columns.y, atol=tol, btol=tol, maxiter=iter_lim)
            z, istop, iterations = res[0], int(res[1]), int(res[2])
        else:
            raise ValueError(f"not an iterative solver: {solver!r}")
        x = op.scale * z
    reason = LSQR_STOP_REASONS.get(istop, f"stop code {istop}")
    if istop == 7:
        warnings.warn(
            f"{solver} stopped at its iteration limit ({iterations}) before reaching tol={tol}",
            ConvergenceWarning,
            stacklevel=2,
        )
    beta = np.zeros(g * t)
    beta[est.reshape(-1)] = backend.to_host(x)
    return beta.reshape(g, t), iterations, reason
