"""A Huber robust index by iteratively reweighted least squares (as statsmodels' RLM), with passes
over the pairs in memory here and on Dask workers (gpu_hpi.dask.passes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...backend.core import Backend
from ...data.cells import CellTable
from ...data.keys import segment_medians
from ...data.pairs import Pairs, pooled_pairs
from ...errors import ConvergenceWarning
from ..identify import Identification
from ..normal import TableFit, fit_table, table_fit
from .cells import CellLookup, cell_ssr
from .options import MethodOptions

MAD_NORMAL = 0.6744897501960817  # median |Z| of a standard normal: MAD -> sigma


class PairPasses(Protocol):
    """The passes over the pairs a robust fit makes, wherever the pairs are: in this process
    (`InMemoryPasses`) or on Dask workers (`gpu_hpi.dask.passes.DaskPasses`)."""

    def scale(self, log_index: np.ndarray) -> np.ndarray:
        """(G,) the MAD scale of each group's residuals."""
        ...

    def weighted_sums(self, log_index: np.ndarray, scale: np.ndarray) -> dict[str, Any]:
        """Per-cell sums of the Huber weights: "n", "y" (of w y) and "y2" (of w y^2)."""
        ...

    def h1_sums(self, log_index: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """(3, G) per group: sum of psi^2, pairs inside c, pairs."""
        ...


class PairStore(Protocol):
    """Where the pairs are kept, coded by the fitted table's groups: in this process (`MemoryPairs`)
    or on a Dask cluster's workers (`gpu_hpi.dask.passes.DaskPairs`). The fits ask it for the same
    things either way."""

    def arrays(self, pooled: bool) -> Pairs | None:
        """The pairs as arrays of this process (as one group where pooled); None where kept elsewhere."""
        ...

    def robust_passes(self, table: CellTable, ident: Identification, pooled: bool, c: float) -> PairPasses:
        """The robust fit's passes over the pairs of `table` (the pooled table where pooled)."""
        ...


@dataclass(frozen=True)
class MemoryPairs:
    """Pairs of this process (numpy or CuPy), coded by the fitted table's groups."""

    pairs: Pairs
    backend: Backend

    def arrays(self, pooled: bool) -> Pairs:
        return pooled_pairs(self.pairs) if pooled else self.pairs

    def robust_passes(self, table: CellTable, ident: Identification, pooled: bool, c: float) -> InMemoryPasses:
        """The passes over pairs in memory; they are sorted by group once, so that the per-group
        medians are O(n)."""
        return InMemoryPasses(table, ident, self.backend, self.arrays(pooled), c)


class InMemoryPasses:
    """The passes over the pairs that the robust fit needs, on arrays of this process."""

    def __init__(self, table: CellTable, ident: Identification, backend: Backend, pairs: Pairs, c: float) -> None:
        xp = self.xp = backend.xp
        self.table, self.backend, self.c = table, backend, c
        cell, _ = CellLookup(table, backend).cells(pairs)
        # only pairs in the base period's component enter the fit
        keep = cell >= 0
        keep[keep] = xp.asarray(ident.identified)[table.group[cell[keep]], table.prev[cell[keep]]]
        cell, y = cell[keep], pairs.y[keep].astype(np.float64)
        grp = table.group[cell]
        order = xp.argsort(grp, kind="stable")
        self.cell, self.y, self.grp = cell[order], y[order], grp[order]
        self.bounds = backend.to_host(xp.searchsorted(self.grp, xp.arange(table.n_groups + 1)))

    def residuals(self, log_index: np.ndarray) -> Any:
        _, d = cell_ssr(self.table, log_index, self.backend)
        return self.y - d[self.cell]

    def scale(self, log_index: np.ndarray) -> np.ndarray:
        """(G,) median |e| / 0.6745 per group (1 where a group has no pairs or no spread)."""
        return scale_from_mad(segment_medians(self.xp, self.xp.abs(self.residuals(log_index)), self.bounds))

    def weighted_sums(self, log_index: np.ndarray, scale: np.ndarray) -> dict[str, Any]:
        xp, n = self.xp, self.table.n_cells
        w = huber_weights(xp, self.residuals(log_index) / xp.asarray(scale)[self.grp], self.c)
        return {
            k: xp.bincount(self.cell, weights=v, minlength=n)
            for k, v in (("n", w), ("y", w * self.y), ("y2", w * self.y * self.y))
        }

    def h1_sums(self, log_index: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """(3, G) per group: sum of psi^2, pairs inside c, pairs."""
        return h1_sums(
            self.xp,
            self.residuals(log_index) / self.xp.asarray(scale)[self.grp],
            self.grp,
            self.table.n_groups,
            self.c,
            self.backend,
        )


def huber_weights(xp: Any, r: Any, c: float) -> Any:
    a = xp.abs(r)
    return xp.where(a <= c, 1.0, c / xp.maximum(a, c))


def h1_sums(xp: Any, sres: Any, grp: Any, n_groups: int, c: float, backend: Backend) -> np.ndarray:
    sums = [
        xp.bincount(grp, weights=xp.clip(sres, -c, c) ** 2, minlength=n_groups),
        xp.bincount(grp, weights=(xp.abs(sres) <= c).astype(np.float64), minlength=n_groups),
        xp.bincount(grp, minlength=n_groups).astype(np.float64),
    ]
    return np.stack([backend.to_host(v) for v in sums])


def scale_from_mad(median_abs: np.ndarray) -> np.ndarray:
    scale = np.nan_to_num(median_abs, nan=1.0) / MAD_NORMAL
    return np.where(scale > 0, scale, 1.0)


def robust_irls(
    table: CellTable, ident: Identification, backend: Backend, options: MethodOptions, passes: PairPasses
) -> tuple[TableFit, dict[str, Any]]:
    """Huber M-estimator by iteratively reweighted least squares, as statsmodels' RLM with
    HuberT(c) and a MAD scale (median |e| / 0.6745, about 0) re-estimated each iteration, per group.
    Standard errors: Huber's H1 (RLM's default). `passes` makes the passes over the pairs (in
    memory, or as Dask tasks): scale, weighted_sums (a weighted cell table), h1_sums."""
    c = options.huber_c
    ols = fit_table(table, ident, backend)
    beta = np.nan_to_num(ols.log_index)
    xp, g = backend.xp, table.n_groups
    with np.errstate(divide="ignore", invalid="ignore"):  # a group without cells: no floor needed
        rms_y = np.sqrt(
            backend.to_host(xp.bincount(table.group, weights=table.sum_y2, minlength=g))
            / backend.to_host(xp.bincount(table.group, weights=table.count.astype(np.float64), minlength=g))
        )

    def scale_of(log_index: np.ndarray) -> np.ndarray:
        # a MAD of round-off (most pairs fitted exactly) is a MAD of 0: weights from it differ by
        # ~1e17 and make the weighted fit singular
        scale = passes.scale(log_index)
        return np.where(scale > 1e-9 * np.nan_to_num(rms_y), scale, 1.0)

    scale = scale_of(ols.log_index)
    fit, converged, iteration = ols, False, 0
    while not converged and iteration < options.max_iter:
        iteration += 1
        fit = fit_table(table, ident, backend, weights=passes.weighted_sums(beta, scale))
        new_beta = np.nan_to_num(fit.log_index)
        scale = scale_of(fit.log_index)
        converged = bool(np.max(np.abs(new_beta - beta), initial=0.0) <= options.tol)
        beta = new_beta
    if not converged:
        import warnings

        warnings.warn(
            f"robust IRLS did not converge in {options.max_iter} iterations", ConvergenceWarning, stacklevel=3
        )

    # Huber's H1 covariance: k^2 [sum psi^2 / (n - p)] s^2 / (mean psi')^2 (Z'Z)^-1, per group
    psi2, inside, n = passes.h1_sums(beta, scale)
    s = scale
    p = ols.n_params
    dof = n - p
    with np.errstate(divide="ignore", invalid="ignore"):
        m = inside / n
        k = 1.0 + p / n * (m - m * m) / (m * m)  # RLM: (df_model + 1) / n, df_model = rank - 1
        factor = np.where(dof > 0, k * k * (psi2 / dof) * s * s / (m * m), np.nan)
        sigma2 = np.where(dof > 0, s * s, np.nan)
    fit = table_fit(
        ident,
        log_index=fit.log_index,
        se=np.sqrt(factor[:, None] * ols.cov_diag),
        cov_diag=ols.cov_diag,
        period_pairs=fit.period_pairs,
        n_used=fit.n_used,
        n_params=fit.n_params,
        ssr=fit.ssr,
        sigma2=sigma2,
        r2=np.full_like(fit.r2, np.nan),
    )
    return fit, {"iterations": iteration, "converged": converged, "huber_c": c, "scale": s.tolist()}
