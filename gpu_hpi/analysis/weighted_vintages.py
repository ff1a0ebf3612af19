"""Case-Shiller's vintages for the revision study: its stage 2 and weighted solve on each vintage's
cells, a batch of groups at a time, from the batch's OLS vintages (vintages.py).

A refit per vintage (case_shiller on table.truncate(v)) copied the table and computed the fit's
statistics each time, which a vintage does not use: 4.7 ms a vintage on 17 groups of 123 periods.
Here the batch's cells are ordered by their later period once, so that each vintage's cells are a
prefix (a view), and each vintage computes only its index: stage 2's per-cell residual sums and
interval weights, then the weighted normal equations and their solve; the vintages of a batch
share the cores' threads (the solves and numpy's larger steps release the interpreter's lock).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from ..backend.core import resolve_backend
from ..backend.ops import solve_spd
from ..data.cells import CellTable
from ..estimation.identify import Identification
from ..estimation.methods import MethodOptions
from ..estimation.methods.cells import cell_ssr, interval_weights, weighted_identification
from ..estimation.normal import normal_system


def case_shiller_block(
    table: CellTable,
    identification: Callable[[int], Identification],
    g0: int,
    cells: slice,
    ols: np.ndarray,
    method: MethodOptions,
    workers: int = 1,
) -> np.ndarray:
    """(b, V, T) Case-Shiller log index of every vintage v = base + 1 + k of the groups
    g0..g0 + b - 1 of `table` (their cells: `cells`; vintage k's Identification of them:
    identification(k)), from their OLS vintages `ols` (b, V, T), NaN past v and where not
    identified. Each vintage is case_shiller(the vintage's cells, its identification,
    ...).log_index up to rounding (its sums are taken in another order of the cells)."""
    b, n_vintages, t = ols.shape
    recent = table.recent[cells]
    order = np.argsort(recent, kind="stable")
    part = replace(
        table.select(np.arange(cells.start, cells.stop)[order]),
        group_labels=table.group_labels[g0 : g0 + b],
    )
    part = replace(part, group=part.group - g0)
    # cells of vintage v: the first ends[v] (recent <= v)
    ends = np.searchsorted(part.recent, np.arange(t), side="right")
    block = np.full_like(ols, np.nan)

    def one(k: int) -> None:
        v = t - n_vintages + k  # base + 1 + k
        view = _prefix(part, int(ends[v]), v + 1)
        block[:, k, : v + 1] = weighted_index(view, identification(k), ols[:, k, : v + 1], method)

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(n_vintages)))
    else:
        for k in range(n_vintages):
            one(k)
    return block


def _prefix(table: CellTable, n_cells: int, n_periods: int) -> CellTable:
    """The first n_cells cells (views), n_periods periods."""
    head = slice(0, n_cells)
    return replace(
        table,
        n_periods=n_periods,
        group=table.group[head],
        prev=table.prev[head],
        recent=table.recent[head],
        count=table.count[head],
        sums={"y": table.sum_y[head], "y2": table.sum_y2[head]},
    )


def weighted_index(table: CellTable, ident: Identification, ols: np.ndarray, method: MethodOptions) -> np.ndarray:
    """(G, T) Case-Shiller log index of a host table whose stage 1 (OLS) index is `ols`, NaN where
    not identified: case_shiller(table, ident, cpu, method, ols_log_index=ols).log_index without
    the statistics (fit_table's) that only the main fit reports."""
    cpu = resolve_backend("cpu")
    resid, _ = cell_ssr(table, ols, cpu)
    weight, _ = interval_weights(table, ident, cpu, resid, absolute=False, quadratic=method.quadratic)
    ident = weighted_identification(table, ident, weight)
    g, t = table.n_groups, table.n_periods
    n = table.count * weight
    used = ident.identified[table.group, table.prev] & (n > 0)
    grp, i, j, n, s1 = (a[used] for a in (table.group, table.prev, table.recent, n, table.sum_y * weight))
    beta, _ = solve_spd(np, *normal_system(np, g, t, grp, i, j, n, s1, ident.estimated), covariance=False)
    return np.where(ident.identified, beta, np.nan)
