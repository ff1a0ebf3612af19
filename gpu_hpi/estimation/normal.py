"""The exact solve: each region's reduced normal equations, built from the cell table and solved in
batches (host LAPACK with the GIL released, or CuPy's batched solve), with their statistics.

All functions take arrays of one backend (numpy or cupy) and use only the shared namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend.core import Backend, to_host
from ..backend.ops import single_thread_blas, solve_spd
from ..data.cells import CellTable
from ..options import SolverName
from .identify import Identification

SOLVERS: tuple[str, ...] = tuple(s.value for s in SolverName)
# numbers per batched dense solve, by backend: on the device a few (batch, T, T) float64 temporaries
# of <= 512 MB each; on the host batches small enough for the cache and for malloc to reuse their
# memory (no page faults)
SOLVE_CELLS = {"gpu": 1 << 26, "cpu": 1 << 21}
THREADED_CELLS = 1 << 20  # numbers of a table's (G, T, T) systems below which one thread solves them


@dataclass(frozen=True, kw_only=True)
class TableFit:
    """A fitted index per group, with statistics from the cell table (host arrays).

    log_index, se: (G, T) float64, NaN where not identified (log_index 0 and se 0 at the base);
    period_pairs: (G, T) int64 pairs touching each period; n_pairs: (G,) pairs per group;
    n_used: (G,) pairs in the base period's connected component (those the fit uses);
    n_params: (G,) estimated periods; ssr, sigma2, r2: (G,) float64 (NaN where undefined);
    cov_diag: (G, T) diagonal of (Z'WZ)^-1 (0 at the base, NaN where not identified).
    """

    log_index: np.ndarray
    se: np.ndarray
    period_pairs: np.ndarray
    n_pairs: np.ndarray
    n_used: np.ndarray
    n_params: np.ndarray
    ssr: np.ndarray
    sigma2: np.ndarray
    r2: np.ndarray
    cov_diag: np.ndarray


def table_fit(
    ident: Identification, *, log_index: np.ndarray, se: np.ndarray, cov_diag: np.ndarray, **stats: Any
) -> TableFit:
    """A TableFit with the conventions every method shares: NaN where a period is not identified,
    se 0 at the base period, a skipped group's ssr, sigma2 and r2 NaN. stats: period_pairs, n_used,
    n_params, ssr, sigma2, r2."""
    nan = ~ident.identified
    se = np.where(nan, np.nan, se)
    se[ident.identified[:, ident.base], ident.base] = 0.0
    fit_stats = {name: np.array(stats[name], dtype=np.float64) for name in ("ssr", "sigma2", "r2")}
    for values in fit_stats.values():
        values[ident.skipped] = np.nan
    return TableFit(
        log_index=np.where(nan, np.nan, log_index),
        se=se,
        cov_diag=np.where(nan, np.nan, cov_diag),
        n_pairs=ident.n_pairs,
        period_pairs=stats["period_pairs"],
        n_used=stats["n_used"],
        n_params=stats["n_params"],
        **fit_stats,
    )


def cell_matrix(
    xp: Any, b: int, t: int, grp: Any, i: Any, j: Any, at_ii: Any, at_jj: Any, at_ij: Any, at_ji: Any
) -> Any:
    """(b, t, t) matrices summing per-cell values into the (i, i), (j, j), (i, j) and (j, i) entries
    of each cell's group (grp in [0, b)): a Laplacian for (n, n, -n, -n)."""
    ti, tj = (grp * t + i) * t, (grp * t + j) * t
    return xp.bincount(
        xp.concatenate([ti + i, tj + j, ti + j, tj + i]),
        weights=xp.concatenate([at_ii, at_jj, at_ij, at_ji]),
        minlength=b * t * t,
    ).reshape(b, t, t)


def laplacian(xp: Any, b: int, t: int, grp: Any, i: Any, j: Any, w: Any, estimated: Any) -> Any:
    """(b, t, t) reduced normal matrices Z'WZ of cells (group grp in [0, b), periods i < j, weight w),
    each (group, i, j) at most once: the weighted degree of an estimated period on the diagonal, -w
    between two estimated periods, and an identity row and column for the periods not estimated
    (estimated (b, t) False: base, unidentified), which so decouple and solve to 0.

    Written entry by entry (the cells are unique) into one zeroed array: a bincount over the
    b * t * t entries and masks over the whole array cost several passes over it (BENCHMARKS.md,
    10,000 regions)."""
    ti, tj = grp * t + i, grp * t + j
    degree = xp.bincount(xp.concatenate([ti, tj]), weights=xp.concatenate([w, w]), minlength=b * t)
    flat = estimated.reshape(-1)
    both = flat[ti] & flat[tj]
    ti, tj, i, j, w = ti[both], tj[both], i[both], j[both], w[both]
    lap = xp.zeros(b * t * t)
    lap[ti * t + j] = -w
    lap[tj * t + i] = -w
    diagonal = xp.arange(b * t) * t + xp.tile(xp.arange(t), b)
    lap[diagonal] = xp.where(flat, degree, 1.0)
    return lap.reshape(b, t, t)


def normal_system(
    xp: Any, b: int, t: int, grp: Any, i: Any, j: Any, w: Any, s1: Any, estimated: Any
) -> tuple[Any, Any]:
    """(lap, rhs): the reduced normal equations Z'WZ beta = Z'Wy of cells (group grp in [0, b),
    periods i < j, weight w, weighted sum of y s1), the periods not estimated decoupled (laplacian)
    and their right-hand side 0."""
    lap = laplacian(xp, b, t, grp, i, j, w, estimated)
    rhs = xp.bincount(xp.concatenate([grp * t + j, grp * t + i]), weights=xp.concatenate([s1, -s1]), minlength=b * t)
    return lap, xp.where(estimated, rhs.reshape(b, t), 0.0)


def decouple(xp: Any, a: Any, m: Any, identity: bool = True) -> Any:
    """In place on (B, T, T) matrices: zero the rows and columns of the periods not estimated (m
    False, (B, T)) and, with identity, put 1 on their diagonal, so that they decouple and solve to
    0. In place because where() and an identity product made three full-size temporaries (3.4 s
    against 0.5 s for 5,000 groups of 123 periods)."""
    a *= m[:, :, None]
    a *= m[:, None, :]
    if identity:
        idx = xp.arange(a.shape[1])
        a[:, idx, idx] += ~m
    return a


def group_batches(table: CellTable, numbers: int = SOLVE_CELLS["gpu"]) -> Iterator[tuple[int, int, slice]]:
    """(g0, g1, cell slice) for batches of groups whose (batch, T, T) matrices hold at most
    `numbers` numbers (cells are sorted by group)."""
    bounds = _group_bounds(table)
    batch = max(1, numbers // table.n_periods**2)
    for g0 in range(0, table.n_groups, batch):
        g1 = min(g0 + batch, table.n_groups)
        yield g0, g1, slice(int(bounds[g0]), int(bounds[g1]))


def _group_bounds(table: CellTable) -> np.ndarray:
    """(G + 1,) cell offsets: group g's cells are rows bounds[g]:bounds[g+1] (cells sorted by group)."""
    group = to_host(table.group)
    return np.searchsorted(group, np.arange(table.n_groups + 1))


def fit_table(
    table: CellTable,
    ident: Identification,
    backend: Backend,
    beta: np.ndarray | None = None,
    weights: dict[str, Any] | None = None,
    covariance: bool = True,
) -> TableFit:
    """Solve the reduced normal equations group by group (batched), or, given `beta` (G, T) from
    an iterative solver, only compute its statistics. Standard errors: sigma^2 (Z'WZ)^-1, with
    sigma^2 = SSR / (n_used - n_params) and SSR = sum over cells of S2 - 2 d S1 + n d^2.

    weights: weighted least squares, as per-cell sums aligned with the table's cells: "n" (sum of
    the pair weights), "y" (of w y) and "y2" (of w y^2); cells of weight 0 count for no pair.
    covariance=False skips (Z'WZ)^-1 (se and cov_diag are then NaN): refits that need only the
    index, such as the revision study's vintages, save the inverse, the bulk of the cost.
    """
    xp = backend.xp
    g_all, t = table.n_groups, table.n_periods
    est = ident.estimated
    out_beta = np.zeros((g_all, t))
    out_var = np.zeros((g_all, t)) if covariance else np.full((g_all, t), np.nan)
    cell_n = table.count.astype(np.float64) if weights is None else weights["n"]
    cell_s1 = table.sum_y if weights is None else weights["y"]
    cell_s2 = table.sum_y2 if weights is None else weights["y2"]
    period_pairs = np.zeros((g_all, t), dtype=np.int64)
    n_used = np.zeros(g_all, dtype=np.int64)
    ssr = np.zeros(g_all)
    tss = np.zeros(g_all)

    def fit_batch(g0: int, g1: int, sl: slice) -> None:
        b = g1 - g0
        grp = table.group[sl] - g0
        i, j, count = table.prev[sl], table.recent[sl], table.count[sl].astype(np.float64)
        nf, s1, s2 = cell_n[sl], cell_s1[sl], cell_s2[sl]
        ti, tj = grp * t + i, grp * t + j
        period_pairs[g0:g1] = (
            backend.to_host(
                xp.bincount(xp.concatenate([ti, tj]), weights=xp.concatenate([count, count]), minlength=b * t)
            )
            .round()
            .astype(np.int64)
            .reshape(b, t)
        )
        # only cells in the base period's component enter the fit (both ends are then identified)
        used = xp.asarray(ident.identified[g0:g1])[grp, i] & (nf > 0)
        grp, i, j, nf, s1, s2, count = (a[used] for a in (grp, i, j, nf, s1, s2, count))
        # only the groups with a period to estimate have a system: the others (skipped, or only the
        # base reached) use no cell, and their identity systems would cost as much as the others'
        (live,) = np.nonzero(est[g0:g1].any(axis=1))
        cell_ssr = s2  # no live group: no cell used
        if live.size:
            rows: Any = slice(None) if live.size == b else live  # the batch's groups solved
            system = grp  # each cell's system
            if live.size < b:
                at = np.full(b, -1, dtype=np.int64)
                at[live] = np.arange(live.size)
                system = xp.asarray(at)[grp]
            m = xp.asarray(est[g0:g1][rows])
            lap, rhs = normal_system(xp, live.size, t, system, i, j, nf, s1, m)
            solved, inv_diag = solve_spd(xp, lap, rhs if beta is None else None, covariance)
            bet = solved if beta is None else xp.where(m, xp.asarray(beta[g0:g1][rows]), 0.0)
            d = bet[system, j] - bet[system, i]
            cell_ssr = s2 - 2.0 * d * s1 + nf * d * d
            out_beta[g0:g1][rows] = backend.to_host(bet)
            if inv_diag is not None:
                out_var[g0:g1][rows] = backend.to_host(xp.where(m, inv_diag, 0.0))
        n_used[g0:g1] = backend.to_host(xp.bincount(grp, weights=count, minlength=b)).round().astype(np.int64)
        ssr[g0:g1] = backend.to_host(xp.bincount(grp, weights=cell_ssr, minlength=b))
        tss[g0:g1] = backend.to_host(xp.bincount(grp, weights=s2, minlength=b))

    # on the CPU a thread per core, each solving its batches with a single-threaded BLAS: the
    # batched (T, T) inverses ran 1.65x faster so than with OpenBLAS threading each call; a single
    # batch (one region, the pooled index) too, as BLAS threads cost more than they save on such
    # systems. The batches in flight together hold at most SOLVE_CELLS numbers, as one batch did before.
    # a small table in one thread: starting threads cost more than its solves (the revision
    # study's thousands of small refits: Case-Shiller's 1.3 s over 20 regions went to 0.6 s)
    small = table.n_groups * t * t < THREADED_CELLS
    workers = 1 if small else backend.workers(table.n_groups)
    per_batch = SOLVE_CELLS[backend.name]
    batches = list(group_batches(table, min(per_batch, -(-table.n_groups // workers) * t * t)))
    # the host's BLAS single-threaded (a device fit uses none: no need to load SciPy's for it)
    with single_thread_blas(xp):
        if workers > 1 and len(batches) > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda batch: fit_batch(*batch), batches))
        else:
            for batch in batches:
                fit_batch(*batch)

    n_params = est.sum(axis=1)
    dof = n_used - n_params
    with np.errstate(divide="ignore", invalid="ignore"):
        ssr = np.maximum(ssr, 0.0)  # rounding can leave a tiny negative SSR for an exact fit
        sigma2 = np.where(dof > 0, ssr / np.maximum(dof, 1), np.nan)
        r2 = np.where(tss > 0, 1.0 - ssr / tss, np.nan)
    return table_fit(
        ident,
        log_index=out_beta,
        se=np.sqrt(sigma2[:, None] * out_var),
        cov_diag=out_var,
        period_pairs=period_pairs,
        n_used=n_used,
        n_params=n_params,
        ssr=ssr,
        sigma2=sigma2,
        r2=r2,
    )
