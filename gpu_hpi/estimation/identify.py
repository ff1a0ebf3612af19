"""Identification: which periods of each region the pairs tie to the base period (connected
components of the period graph)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from ..backend.core import to_host
from ..data.cells import CellTable


@dataclass(frozen=True)
class Identification:
    """Which periods a group's pairs identify relative to the base period (host arrays).

    identified: (G, T) bool, True where the period is connected to `base` through pairs (the base
    itself included); all False in skipped groups. skipped: (G,) bool, group has < min_pairs pairs.
    n_pairs: (G,) int64 pairs per group; base: the base period.
    """

    identified: np.ndarray
    skipped: np.ndarray
    n_pairs: np.ndarray
    base: int

    @property
    def estimated(self) -> np.ndarray:
        """(G, T) bool: the free parameters, identified periods other than the base."""
        est = self.identified.copy()
        est[:, self.base] = False
        return est


def identify(table: CellTable, base: int, min_pairs: int, cells: Any = None) -> Identification:
    """Connected components of each group's period graph (an edge per non-empty cell, or per
    cell where the boolean mask `cells` is True, e.g. cells of positive weight).

    Runs on the host: the table has at most G x T^2 / 2 cells, and scipy's csgraph is one call
    over the block-diagonal graph of all groups (node g * T + t).
    """
    host = table.to_host()
    g, t = table.n_groups, table.n_periods
    n_pairs = np.bincount(host.group, weights=host.count, minlength=g).round().astype(np.int64)
    skipped = n_pairs < min_pairs
    keep = ~skipped[host.group]
    if cells is not None:
        keep &= to_host(cells)
    rows = (host.group * t + host.prev)[keep]
    cols = (host.group * t + host.recent)[keep]
    graph = scipy.sparse.coo_matrix((np.ones(rows.shape[0]), (rows, cols)), shape=(g * t, g * t))
    _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    labels = labels.reshape(g, t)
    identified = (labels == labels[:, base : base + 1]) & ~skipped[:, None]
    return Identification(identified, skipped, n_pairs, base)
