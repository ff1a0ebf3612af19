"""What the methods compute per cell of a fitted table: residual sums, stage-2 interval weights, the
periods still identified under weights, and passes over the pairs that map each pair to its cell."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend.core import Backend, array_namespace
from ...data.cells import CellTable, cell_key
from ...data.pairs import Pairs, count_invalid
from ..identify import Identification, identify


def cell_ssr(table: CellTable, beta: np.ndarray, backend: Backend) -> tuple[Any, Any]:
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
    used = xp.asarray(ident.identified)[table.group, table.prev]
    g = table.n_groups

    def per_group(values: Any) -> Any:
        return xp.bincount(table.group, weights=values, minlength=g)

    # X'X's entry (a, b) is the sum of n h^(a + b): 2k - 1 sums, not k^2 (the products are
    # integers, exact in float64, so any order of the factors gives the same numbers)
    moments = []
    term = xp.where(used, table.count.astype(np.float64), 0.0)
    for _ in range(2 * k - 1):
        moments.append(per_group(term))
        term = term * h
    e = xp.where(used, resid, 0.0)
    xty = xp.stack([per_group(e * term) for term in (1.0, h, h * h)[:k]], axis=1)

    def fit(terms: int) -> tuple[Any, Any]:
        """The (G, k) coefficients on the first `terms` of [1, h, h^2] (zeros beyond), and the groups
        with too few distinct intervals for them (their X'X is singular)."""
        xtx = xp.stack([xp.stack([moments[a + b] for b in range(terms)], axis=1) for a in range(terms)], axis=1)
        singular = xp.abs(xp.linalg.det(xtx)) < 1e-12 * xp.maximum(xtx[:, 0, 0], 1.0) ** terms
        xtx = xp.where(singular[:, None, None], xp.eye(terms), xtx)
        coef = xp.linalg.solve(xtx, xty[:, :terms, None])[:, :, 0]
        return xp.concatenate([coef, xp.zeros((g, k - terms))], axis=1), singular

    # a group with too few distinct intervals for the h^2 term fits [1, h] (two intervals fit the
    # line exactly, as they fit any curve through them), and with one, the mean residual: its
    # weights are constant and stage 3 is OLS
    coef, singular = fit(k)
    if quadratic:
        linear, flat = fit(2)
        coef, singular = xp.where(singular[:, None], linear, coef), singular & flat
    mean = xp.zeros((g, k))
    mean[:, 0] = xty[:, 0] / xp.maximum(moments[0], 1.0)
    coef = xp.where(singular[:, None], mean, coef)
    # a group its index fits exactly (no more pairs than periods, say) has residuals of round-off
    # alone: weights from them differ by ~1e17 and make the weighted fit singular; equal weights
    # give its exact fit
    size = per_group(xp.where(used, table.sum_y2, 0.0))
    if absolute:  # the sum of |y| is at most sqrt(n sum of y^2)
        size = xp.sqrt(size * moments[0])
    exact = per_group(e) <= (1e-6 if absolute else 1e-12) * size
    coef = xp.where(exact[:, None], xp.eye(k)[0], coef)
    fitted = coef[:, 0][table.group] + coef[:, 1][table.group] * h
    if quadratic:
        fitted = fitted + coef[:, 2][table.group] * (h * h)
    positive = used & (fitted > 0)
    safe = xp.where(positive, fitted, 1.0)
    weight = xp.where(positive, 1.0 / (safe * safe if absolute else safe), 0.0)
    out = np.zeros((g, 3))
    out[:, :k] = backend.to_host(coef)
    return weight, out


def weighted_identification(table: CellTable, ident: Identification, weight: Any) -> Identification:
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
        from ...data.cells import DENSE_KEY_LIMIT

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
        group = None if pairs.group is None else xp.maximum(pairs.group, 0)
        key = cell_key(group, xp.clip(pairs.prev, 0, t - 1), xp.clip(pairs.recent, 0, t - 1), t)
        if self.dense is not None:
            cell = self.dense[key]
        else:
            pos = xp.clip(xp.searchsorted(self.keys, key), 0, max(self.table.n_cells - 1, 0))
            cell = xp.where(self.keys[pos] == key, pos, -1) if self.table.n_cells else xp.full(key.shape, -1)
        return xp.where(valid, cell, -1), valid
