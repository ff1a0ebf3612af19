"""Case & Shiller's (1987) interval-weighted repeat-sales index."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend.core import Backend
from ...data.cells import CellTable
from ...data.pairs import Pairs
from ...errors import ConfigError
from ..identify import Identification
from ..normal import TableFit, fit_table
from .cells import cell_ssr, interval_weights, pair_pass, weighted_identification
from .options import MethodOptions


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
    ssr, d = cell_ssr(table, ols_log_index, backend)
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
        table, weighted_identification(table, ident, weight), backend, weights=weights, covariance=covariance
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
