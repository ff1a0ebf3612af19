"""Index methods beyond ordinary least squares (BMN): Case-Shiller interval weighting, a Huber
robust fit and Shiller's value-weighted arithmetic index.

Case-Shiller and the arithmetic index run on the cell table alone: their stage-2 regressions
need per-cell sums of squared residuals, which follow from the table's moments. The robust fit
and the |e| variant of stage 2 depend on each pair's own residual: they make passes over the
pairs (kept on the device on the GPU), one per iteration.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Backend, array_namespace
from .data.cells import CellTable
from .data.pairs import Pairs, count_invalid
from .errors import ConfigError, ConvergenceWarning, DataError
from .estimation.identify import Identification, identify
from .estimation.normal import TableFit, cell_matrix, decouple, fit_table, group_batches

METHODS = ("bmn", "case_shiller", "robust", "arithmetic")
PAIR_METHODS = ("robust",)  # methods that need the pairs, not only their table
MAD_NORMAL = 0.6744897501960817  # median |Z| of a standard normal: MAD -> sigma


@dataclass(frozen=True)
class MethodOptions:
    """stage2: "squared" regresses e^2 on the holding interval (weights 1 / fitted), "absolute" |e|
    (weights 1 / fitted^2); quadratic: add h^2 to that regression; interval_weights: the
    arithmetic index with Case-Shiller weights; huber_c, max_iter, tol: the robust IRLS."""

    name: str = "bmn"
    stage2: str = "squared"
    quadratic: bool = False
    interval_weights: bool = False
    huber_c: float = 1.345
    max_iter: int = 50
    tol: float = 1e-10

    @property
    def needs_pairs(self) -> bool:
        """True where a cell table is not enough: robust, and Case-Shiller's |e| stage 2."""
        return self.name in PAIR_METHODS or (self.name == "case_shiller" and self.stage2 == "absolute")

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ConfigError(f"method must be one of {list(METHODS)}, got {self.name!r}")
        if self.stage2 not in ("squared", "absolute"):
            raise ConfigError(f"stage2 must be 'squared' or 'absolute', got {self.stage2!r}")


def fit_method(
    table: CellTable,
    ident: Identification,
    backend: Backend,
    options: MethodOptions,
    pairs: Pairs | None = None,
    covariance: bool = True,
) -> tuple[TableFit, dict[str, Any]]:
    """The fit of one table (all groups, or the pooled table with `pairs` read as one group).
    covariance=False: the index without its standard errors, where a method can skip them."""
    if options.name == "bmn":
        return fit_table(table, ident, backend, covariance=covariance), {}
    if options.name == "case_shiller":
        return case_shiller(table, ident, backend, options, pairs, covariance=covariance)
    if options.name == "robust":
        if pairs is None:
            raise ConfigError("method=robust needs the pairs themselves, not only their cell table")
        return robust(table, ident, backend, pairs, options)
    return arithmetic(table, ident, backend, options)


def _cell_ssr(table: CellTable, beta: np.ndarray, backend: Backend) -> tuple[Any, Any]:
    """Per-cell sums of squared residuals of the log index beta (G, T), and d = beta_j - beta_i."""
    xp = backend.xp
    bet = xp.asarray(np.nan_to_num(beta))
    d = bet[table.group, table.recent] - bet[table.group, table.prev]
    return xp.maximum(table.sum_y2 - 2.0 * d * table.sum_y + table.count * d * d, 0.0), d


def interval_weights(
    table: CellTable, ident: Identification, backend: Backend, resid: Any, *, absolute: bool, quadratic: bool
) -> tuple[Any, np.ndarray]:
    """Stage 2 of Case-Shiller: per group, regress the pairs' squared (or absolute) residuals on
    [1, h(, h^2)], h = recent - prev, from per-cell sums `resid` of e^2 (or |e|); returns the
    per-cell weights 1 / fitted (1 / fitted^2 for |e|; 0 where fitted <= 0) and the (G, 3)
    coefficients (h^2 term 0 unless quadratic). Cells outside the base component weigh 0."""
    xp = backend.xp
    h = (table.recent - table.prev).astype(np.float64)
    k = 3 if quadratic else 2
    terms = [xp.ones_like(h), h, h * h][:k]
    n = table.count.astype(np.float64)
    used = xp.asarray(ident.identified)[table.group, table.prev]
    g = table.n_groups
    xtx = xp.zeros((g, k, k))
    xty = xp.zeros((g, k))
    for a in range(k):
        xty[:, a] = xp.bincount(table.group, weights=xp.where(used, resid * terms[a], 0.0), minlength=g)
        for b in range(k):
            xtx[:, a, b] = xp.bincount(table.group, weights=xp.where(used, n * terms[a] * terms[b], 0.0), minlength=g)
    # a group with too few distinct intervals for the h (and h^2) terms: intercept only, i.e. the
    # mean residual, so that its weights are constant and stage 3 is OLS
    singular = xp.abs(xp.linalg.det(xtx)) < 1e-12 * xp.maximum(xtx[:, 0, 0], 1.0) ** k
    mean_only = xp.zeros((g, k, k)) + xp.eye(k)
    mean_only[:, 0, 0] = xp.maximum(xtx[:, 0, 0], 1.0)
    xtx = xp.where(singular[:, None, None], mean_only, xtx)
    xty = xp.where(singular[:, None], xty * (xp.arange(k) == 0), xty)
    coef = xp.linalg.solve(xtx, xty[:, :, None])[:, :, 0]
    fitted = sum(coef[table.group, a] * terms[a] for a in range(k))
    positive = used & (fitted > 0)
    safe = xp.where(positive, fitted, 1.0)
    weight = xp.where(positive, 1.0 / (safe * safe if absolute else safe), 0.0)
    out = np.zeros((g, 3))
    out[:, :k] = backend.to_host(coef)
    return weight, out


def case_shiller(
    table: CellTable,
    ident: Identification,
    backend: Backend,
    options: MethodOptions,
    pairs: Pairs | None = None,
    *,
    ols_log_index: np.ndarray | None = None,
    covariance: bool = True,
) -> tuple[TableFit, dict[str, Any]]:
    """Case & Shiller (1987): OLS, stage-2 regression of the squared residuals on the holding
    interval, then weighted least squares with weights 1 / fitted(h); standard errors of the
    weighted fit. Table only, except the |e| variant (one pass over the pairs).
    ols_log_index: the stage-1 (OLS) index where the caller has it already (the vintages)."""
    if ols_log_index is None:
        ols_log_index = fit_table(table, ident, backend, covariance=False).log_index
    ssr, d = _cell_ssr(table, ols_log_index, backend)
    absolute = options.stage2 == "absolute"
    if absolute:
        if pairs is None:
            raise ConfigError("method.stage2=absolute needs the pairs (a sum of |e| per cell is not in the table)")
        resid = pair_pass(pairs, table, backend, lambda y, cell: {"abs": abs(y - d[cell])})["abs"]
    else:
        resid = ssr
    weight, coef = interval_weights(table, ident, backend, resid, absolute=absolute, quadratic=options.quadratic)
    weights = {"n": table.count * weight, "y": table.sum_y * weight, "y2": table.sum_y2 * weight}
    fit = fit_table(
        table, _weighted_identification(table, ident, weight), backend, weights=weights, covariance=covariance
    )
    details = {"stage2": options.stage2, "stage2_coef": coef.tolist(), "quadratic": options.quadratic}
    return fit, {**details, **_zero_weight(table, ident, backend, weight)}


def _zero_weight(table: CellTable, ident: Identification, backend: Backend, weight: Any) -> dict[str, Any]:
    """The pairs of the base component that stage 2 gave weight 0 (their fitted variance is not
    positive, as a linear fit in h turns negative past some holding length), and the shortest such
    holding length (fit_index warns of them)."""
    xp = backend.xp
    lost = xp.asarray(ident.identified)[table.group, table.prev] & (weight == 0)
    n_lost = int(backend.to_host(table.count[lost].sum()))
    if not n_lost:
        return {}
    hold = int(backend.to_host((table.recent - table.prev)[lost].min()))
    return {"zero_weight_pairs": n_lost, "zero_weight_from_holding": hold}


def _weighted_identification(table: CellTable, ident: Identification, weight: Any) -> Identification:
    """The periods still connected to the base through cells of positive weight (stage-2 weights
    can be 0), in the groups the unweighted fit did not skip."""
    xp = array_namespace(weight)
    if bool((weight[xp.asarray(ident.identified)[table.group, table.prev]] > 0).all()):
        return ident  # no cell of the base component lost its weight: the same periods are connected
    connected = identify(table, ident.base, 0, cells=weight > 0).identified
    return Identification(connected & ~ident.skipped[:, None], ident.skipped, ident.n_pairs, ident.base)


def pair_pass(pairs: Pairs, table: CellTable, backend: Backend, values: Any, chunk: int = 1 << 22) -> dict[str, Any]:
    """One pass over the valid pairs: per-cell sums of `values(y, cell) -> {name: per-pair array}`,
    where cell indexes the table's cells (pairs outside the table are skipped)."""
    xp = backend.xp
    lookup = CellLookup(table, backend)
    totals: dict[str, Any] = {}
    for start in range(0, pairs.n_pairs, chunk):
        part = pairs.chunk(start, start + chunk)
        cell, _ = lookup.cells(part)
        ok = cell >= 0
        cell, y = cell[ok], part.y[ok].astype(np.float64)
        for name, v in values(y, cell).items():
            add = xp.bincount(cell, weights=v, minlength=table.n_cells)
            totals[name] = totals[name] + add if name in totals else add
    return totals


class CellLookup:
    """Maps pairs to the index of their cell in a table: a dense key -> cell array for small key
    spaces, a binary search in the sorted keys otherwise."""

    def __init__(self, table: CellTable, backend: Backend) -> None:
        from .data.cells import DENSE_KEY_LIMIT

        self.table, self.xp = table, backend.xp
        self.keys = table.key()
        n_keys = table.n_groups * table.n_periods**2
        self.dense = None
        if n_keys <= DENSE_KEY_LIMIT:
            self.dense = self.xp.full(n_keys, -1, dtype=np.int64)
            self.dense[self.keys] = self.xp.arange(table.n_cells)

    def cells(self, pairs: Pairs) -> tuple[Any, Any]:
        """(cell index per pair, -1 where invalid or not in the table; valid mask)."""
        xp, t = self.xp, self.table.n_periods
        valid, _ = count_invalid(xp, pairs)
        prev = xp.clip(pairs.prev, 0, t - 1).astype(np.int64)
        recent = xp.clip(pairs.recent, 0, t - 1).astype(np.int64)
        key = prev * t + recent
        if pairs.group is not None:
            key += xp.maximum(pairs.group, 0).astype(np.int64) * (t * t)
        if self.dense is not None:
            cell = self.dense[key]
        else:
            pos = xp.clip(xp.searchsorted(self.keys, key), 0, max(self.table.n_cells - 1, 0))
            cell = xp.where(self.keys[pos] == key, pos, -1) if self.table.n_cells else xp.full(key.shape, -1)
        return xp.where(valid, cell, -1), valid


def segment_medians(xp: Any, values: Any, bounds: np.ndarray) -> np.ndarray:
    """(S,) host medians of values[bounds[s]:bounds[s+1]] (NaN for an empty segment): O(n) in all
    for values sorted by segment, one selection per segment."""
    return np.array([float(xp.median(values[a:b])) if b > a else np.nan for a, b in itertools.pairwise(bounds)])


def robust(
    table: CellTable, ident: Identification, backend: Backend, pairs: Pairs, options: MethodOptions
) -> tuple[TableFit, dict[str, Any]]:
    """Huber M-estimator by iteratively reweighted least squares over pairs in memory (see
    robust_irls); the pairs are sorted by group once, so that the per-group medians are O(n)."""
    return robust_irls(table, ident, backend, options, InMemoryPasses(table, ident, backend, pairs, options.huber_c))


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
        _, d = _cell_ssr(self.table, log_index, self.backend)
        return self.y - d[self.cell]

    def scale(self, log_index: np.ndarray) -> np.ndarray:
        """(G,) median |e| / 0.6745 per group (1 where a group has no pairs or no spread)."""
        return _scale(segment_medians(self.xp, self.xp.abs(self.residuals(log_index)), self.bounds))

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


def _scale(median_abs: np.ndarray) -> np.ndarray:
    scale = np.nan_to_num(median_abs, nan=1.0) / MAD_NORMAL
    return np.where(scale > 0, scale, 1.0)


def robust_irls(
    table: CellTable, ident: Identification, backend: Backend, options: MethodOptions, passes: Any
) -> tuple[TableFit, dict[str, Any]]:
    """Huber M-estimator by iteratively reweighted least squares, as statsmodels' RLM with
    HuberT(c) and a MAD scale (median |e| / 0.6745, about 0) re-estimated each iteration, per group.
    Standard errors: Huber's H1 (RLM's default). `passes` makes the passes over the pairs (in
    memory, or as Dask tasks): scale, weighted_sums (a weighted cell table), h1_sums."""
    c = options.huber_c
    ols = fit_table(table, ident, backend)
    beta = np.nan_to_num(ols.log_index)
    scale = passes.scale(ols.log_index)
    fit, converged, iteration = ols, False, 0
    while not converged and iteration < options.max_iter:
        iteration += 1
        fit = fit_table(table, ident, backend, weights=passes.weighted_sums(beta, scale))
        new_beta = np.nan_to_num(fit.log_index)
        scale = passes.scale(fit.log_index)
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
    se = np.sqrt(factor[:, None] * ols.cov_diag)
    se[ident.identified[:, ident.base], ident.base] = 0.0
    fit = TableFit(
        fit.log_index,
        se,
        fit.period_pairs,
        fit.n_pairs,
        fit.n_used,
        fit.n_params,
        fit.ssr,
        sigma2,
        np.full_like(fit.r2, np.nan),
        ols.cov_diag,
    )
    return fit, {"iterations": iteration, "converged": converged, "huber_c": c, "scale": s.tolist()}


def arithmetic(
    table: CellTable, ident: Identification, backend: Backend, options: MethodOptions
) -> tuple[TableFit, dict[str, Any]]:
    """Shiller's (1991) value-weighted arithmetic index: b = (Z'WX)^-1 Z'WY with X holding -P_i at
    i and +P_j at j and Y = -(X's base column); index = 100 / b. Interval weights (option) from a
    stage-2 regression of u^2 = (Y - X b)^2 on the holding interval. Standard errors: the
    heteroskedasticity-robust sandwich (Z'WX)^-1 (sum w^2 u^2 z z') (X'WZ)^-1, then the delta
    method for log(index) = -log(b)."""
    if not table.has_prices:
        raise DataError(
            "method=arithmetic needs sale prices: set data.columns.price_prev and data.columns.price_recent"
        )
    xp = backend.xp
    ones = xp.ones(table.n_cells)
    b, u2 = _arithmetic_solve(table, ident, backend, ones)
    info: dict[str, Any] = {"interval_weights": options.interval_weights}
    weight = ones
    if options.interval_weights:
        weight, coef = interval_weights(table, ident, backend, u2, absolute=False, quadratic=options.quadratic)
        ident = _weighted_identification(table, ident, weight)
        b, u2 = _arithmetic_solve(table, ident, backend, weight)
        info["stage2_coef"] = coef.tolist()
    return _arithmetic_fit(table, ident, backend, weight, b, u2), info


def _arithmetic_solve(table: CellTable, ident: Identification, backend: Backend, weight: Any) -> tuple[Any, Any]:
    """(b (G, T) with b = 1 at the base and where not estimated, per-cell sums of u^2)."""
    xp = backend.xp
    t, est = table.n_periods, ident.estimated
    out = xp.ones((table.n_groups, t))
    for g0, g1, sl in group_batches(table):
        grp, i, j = table.group[sl] - g0, table.prev[sl], table.recent[sl]
        used = xp.asarray(ident.identified[g0:g1])[grp, i] & (weight[sl] > 0)
        w = xp.where(used, weight[sl], 0.0)
        p0, p1 = w * table.sums["p_prev"][sl], w * table.sums["p_recent"][sl]
        zx = cell_matrix(xp, g1 - g0, t, grp, i, j, p0, p1, -p1, -p0)
        m = xp.asarray(est[g0:g1])
        rhs = xp.where(m, -zx[:, :, ident.base], 0.0)
        a = decouple(xp, zx, m)
        out[g0:g1] = xp.where(m, xp.linalg.solve(a, rhs[:, :, None])[:, :, 0], 1.0)
    bi, bj = out[table.group, table.prev], out[table.group, table.recent]
    s = table.sums
    u2 = bi * bi * s["p_prev2"] - 2.0 * bi * bj * s["p_cross"] + bj * bj * s["p_recent2"]
    return out, xp.maximum(u2, 0.0)


def _arithmetic_fit(
    table: CellTable, ident: Identification, backend: Backend, weight: Any, b: Any, u2: Any
) -> TableFit:
    xp = backend.xp
    t, est = table.n_periods, ident.estimated
    g_all = table.n_groups
    var_b = np.zeros((g_all, t))
    n_used = np.zeros(g_all, dtype=np.int64)
    ssr = np.zeros(g_all)
    period_pairs = np.zeros((g_all, t), dtype=np.int64)
    for g0, g1, sl in group_batches(table):
        nb = g1 - g0
        grp, i, j = table.group[sl] - g0, table.prev[sl], table.recent[sl]
        count = table.count[sl].astype(np.float64)
        touching = xp.bincount(
            xp.concatenate([grp * t + i, grp * t + j]), weights=xp.concatenate([count, count]), minlength=nb * t
        )
        period_pairs[g0:g1] = backend.to_host(touching).round().astype(np.int64).reshape(nb, t)
        used = xp.asarray(ident.identified[g0:g1])[grp, i] & (weight[sl] > 0)
        w = xp.where(used, weight[sl], 0.0)
        p0, p1 = w * table.sums["p_prev"][sl], w * table.sums["p_recent"][sl]
        m = xp.asarray(est[g0:g1])
        zx = decouple(xp, cell_matrix(xp, nb, t, grp, i, j, p0, p1, -p1, -p0), m)
        meat_w = w * w * u2[sl]
        meat = decouple(xp, cell_matrix(xp, nb, t, grp, i, j, meat_w, meat_w, -meat_w, -meat_w), m, identity=False)
        inv = decouple(xp, xp.linalg.inv(zx), m, identity=False)
        cov = inv @ meat @ xp.swapaxes(inv, 1, 2)
        var_b[g0:g1] = backend.to_host(xp.diagonal(cov, axis1=1, axis2=2))
        n_used[g0:g1] = backend.to_host(xp.bincount(grp, weights=xp.where(used, count, 0.0), minlength=nb)).round()
        ssr[g0:g1] = backend.to_host(xp.bincount(grp, weights=xp.where(used, u2[sl], 0.0), minlength=nb))
    bh = backend.to_host(b)
    nan = ~ident.identified
    with np.errstate(divide="ignore", invalid="ignore"):
        log_index = np.where(nan, np.nan, -np.log(bh))
        se = np.where(nan, np.nan, np.sqrt(var_b) / np.abs(bh))
    se[ident.identified[:, ident.base], ident.base] = 0.0
    n_params = est.sum(axis=1)
    dof = n_used - n_params
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma2 = np.where(dof > 0, ssr / np.maximum(dof, 1), np.nan)
    sigma2[ident.skipped] = ssr[ident.skipped] = np.nan
    return TableFit(
        log_index,
        se,
        period_pairs,
        ident.n_pairs,
        n_used,
        n_params,
        ssr,
        sigma2,
        np.full(g_all, np.nan),
        np.where(nan, np.nan, var_b),
    )
