"""Index methods beyond ordinary least squares (BMN): Case-Shiller interval weighting, a Huber
robust fit and Shiller's value-weighted arithmetic index.

Case-Shiller and the arithmetic index run on the cell table alone: their stage-2 regressions
need per-cell sums of squared residuals, which follow from the table's moments. The robust fit
and the |e| variant of stage 2 depend on each pair's own residual: they make passes over the
pairs (kept on the device on the GPU), one per iteration.
"""

from __future__ import annotations

from typing import Any

from ...backend.core import Backend
from ...data.cells import CellTable
from ...errors import ConfigError
from ..identify import Identification
from ..normal import TableFit, fit_table
from .arithmetic import arithmetic
from .case_shiller import case_shiller
from .options import METHODS, PAIR_METHODS, MethodOptions
from .robust import MemoryPairs, PairStore, robust_irls

__all__ = ["METHODS", "PAIR_METHODS", "MemoryPairs", "MethodOptions", "PairStore", "fit_method", "robust_irls"]


def fit_method(
    table: CellTable,
    ident: Identification,
    backend: Backend,
    options: MethodOptions,
    pairs: PairStore | None = None,
    pooled: bool = False,
    covariance: bool = True,
) -> tuple[TableFit, dict[str, Any]]:
    """The fit of one table (all groups, or the pooled table: `pooled`, the pairs then read as one
    group). covariance=False: the index without its standard errors, where a method can skip them."""
    if options.name == "bmn":
        return fit_table(table, ident, backend, covariance=covariance), {}
    if options.name == "case_shiller":
        arrays = None if pairs is None else pairs.arrays(pooled)
        return case_shiller(table, ident, backend, options, arrays, covariance=covariance)
    if options.name == "robust":
        if pairs is None:
            raise ConfigError("method=robust needs the pairs themselves, not only their cell table")
        return robust_irls(table, ident, backend, options, pairs.robust_passes(table, ident, pooled, options.huber_c))
    return arithmetic(table, ident, backend, options)
