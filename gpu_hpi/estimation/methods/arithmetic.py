"""Shiller's (1991) value-weighted arithmetic index, from the cell table's price sums."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend.core import Backend
from ...data.cells import CellTable
from ...errors import DataError
from ..identify import Identification
from ..normal import TableFit, cell_matrix, decouple, group_batches, table_fit
from .cells import interval_weights, weighted_identification
from .options import MethodOptions


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
            "method=arithmetic needs sale prices: set data.columns.price_prev and data.columns.price_recent, "
            "and for stored cell tables, tables written from pairs with prices (each one added must have them)"
        )
    xp = backend.xp
    ones = xp.ones(table.n_cells)
    b, u2 = _arithmetic_solve(table, ident, backend, ones)
    info: dict[str, Any] = {"interval_weights": options.interval_weights}
    weight = ones
    if options.interval_weights:
        weight, coef = interval_weights(table, ident, backend, u2, absolute=False, quadratic=options.quadratic)
        ident = weighted_identification(table, ident, weight)
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
    n_params = est.sum(axis=1)
    dof = n_used - n_params
    with np.errstate(divide="ignore", invalid="ignore"):
        return table_fit(
            ident,
            log_index=-np.log(bh) + 0.0,  # + 0.0: the base period's -0.0 (-log 1) written as 0
            # a group without residual degrees of freedom has no error to estimate (the sandwich
            # of its zero residuals gave se 0): NaN, as the OLS fit's
            se=np.where((dof > 0)[:, None], np.sqrt(var_b) / np.abs(bh), np.nan),
            cov_diag=var_b,
            period_pairs=period_pairs,
            n_used=n_used,
            n_params=n_params,
            ssr=ssr,
            sigma2=np.where(dof > 0, ssr / np.maximum(dof, 1), np.nan),
            r2=np.full(g_all, np.nan),
        )
