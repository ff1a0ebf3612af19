"""How the analyses re-estimate an index from other cell tables (a vintage's, all pairs less a
fold): as the main fit, on the host in float64."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backend.core import resolve_backend
from ..data.cells import CellTable
from ..estimation.api import index_tables
from ..estimation.identify import identify
from ..estimation.methods import MethodOptions, fit_method


@dataclass(frozen=True)
class Refit:
    """How the diagnostics re-estimate an index from other cell tables: as the main fit (its
    method; min_pairs, None for each table's number of periods; which indices, the groups' and
    the pooled one), always on the host in float64: a table is a few MB, and its (G, T, T) solves
    gain nothing on a GPU. Only the index is refitted, not its standard errors."""

    method: MethodOptions = field(default_factory=MethodOptions)
    min_pairs: int | None = None
    groups: bool = True
    pooled: bool = True

    def tables(self, table: CellTable) -> list[CellTable]:
        """The host tables whose groups are the rows of the main fit's IndexResult, in its order."""
        return [tab for _, tab in index_tables(table.to_host(), self.groups, self.pooled)]

    def group_log_index(self, table: CellTable, base: int) -> np.ndarray:
        """(G, T) log index of each group of `table` (no pooled index), NaN where not identified."""
        host = table.to_host()
        ident = identify(host, base, host.n_periods if self.min_pairs is None else self.min_pairs)
        fit, _ = fit_method(host, ident, resolve_backend("cpu"), self.method, covariance=False)
        return fit.log_index
