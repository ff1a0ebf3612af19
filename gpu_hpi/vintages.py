"""Vintages: the index as it would have been estimated at each past period, for the revision study.

Vintage v is the index fitted from the cells whose later sale falls in period v or before. Refit
one by one, that is T fits. Here one sweep over the cells in the order of their later period
builds every vintage's normal equations incrementally (a cell joins the Laplacian once, at
vintage `recent`), and one minimum spanning tree of the period graph, weighted by `recent`,
tells from which vintage on each period is connected to the base (the largest weight on the
tree path between them). Each vintage is then one solve batched over the groups, on the host in
float64: the tables are a few MB, and (G, v, v) solves gain nothing on a GPU.
Case-Shiller adds its stage 2 and weighted solve per vintage on that vintage's cells, starting
from the swept OLS index; the arithmetic index is refitted vintage by vintage.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from .backend.core import resolve_backend
from .data.cells import CellTable
from .estimation.identify import Identification
from .estimation.methods import MethodOptions, fit_method
from .estimation.methods.case_shiller import case_shiller
from .estimation.normal import decouple, group_batches

# numbers in one group batch's (batch, T, T) Laplacian during the sweep: 64 MB
SWEEP_NUMBERS = 1 << 23


def first_connected(table: CellTable, base: int) -> np.ndarray:
    """(G, T) int64: the first vintage (last period) v from which period p is connected to the base
    period through cells with recent <= v; 0 for the base itself, T where never (host table)."""
    g, t = table.n_groups, table.n_periods
    root = g * t  # a virtual node tied to every group's base period by the lightest edge
    rows = np.concatenate([table.group * t + table.prev, np.full(g, root)])
    cols = np.concatenate([table.group * t + table.recent, np.arange(g) * t + base])
    # weights recent + 1 >= 2 (a stored 0 would be no edge); the root's edges weigh 1
    weights = np.concatenate([table.recent + 1.0, np.ones(g)])
    graph = scipy.sparse.coo_matrix((weights, (rows, cols)), shape=(root + 1, root + 1)).tocsr()
    tree = scipy.sparse.csgraph.minimum_spanning_tree(graph)
    tree = (tree + tree.T).tocoo()
    _, parent = scipy.sparse.csgraph.breadth_first_order(tree, root, directed=False, return_predecessors=True)
    reached = parent >= 0
    reached[root] = True
    up = np.where(parent >= 0, parent, np.arange(root + 1))
    heaviest = np.zeros(root + 1)  # the largest weight between a node and `up`
    to_parent = parent[tree.row] == tree.col
    heaviest[tree.row[to_parent]] = tree.data[to_parent]
    while (up != up[up]).any():  # pointer jumping: log2(tree depth) rounds
        heaviest, up = np.maximum(heaviest, heaviest[up]), up[up]
    first = np.where(reached, heaviest - 1.0, t).astype(np.int64)
    return first[:root].reshape(g, t)


def vintage_identifications(table: CellTable, base: int, min_pairs: int | None) -> list[Identification]:
    """identify(table.truncate(v), base, min_pairs) for v = base + 1 .. T - 1, from one tree (host
    table); min_pairs None: each vintage's number of periods, v + 1, as fit_index's default."""
    g, t = table.n_groups, table.n_periods
    first = first_connected(table, base)
    per_period = np.bincount(table.group * t + table.recent, weights=table.count, minlength=g * t)
    n_pairs = np.rint(np.cumsum(per_period.reshape(g, t), axis=1)).astype(np.int64)
    idents = []
    for v in range(base + 1, t):
        skipped = n_pairs[:, v] < (v + 1 if min_pairs is None else min_pairs)
        identified = (first[:, : v + 1] <= v) & ~skipped[:, None]
        idents.append(Identification(identified, skipped, n_pairs[:, v], base))
    return idents


def ols_vintages(table: CellTable, idents: list[Identification]) -> np.ndarray:
    """(V, G, T) OLS log index of each vintage v = base + 1 + k (NaN past v and where not
    identified) by one sweep over the cells in the order of their later period (host table)."""
    g, t = table.n_groups, table.n_periods
    base = idents[0].base if idents else 0
    out = np.full((len(idents), g, t), np.nan)
    for g0, g1, sl in group_batches(table, SWEEP_NUMBERS):
        b = g1 - g0
        order = np.argsort(table.recent[sl], kind="stable")
        grp, i, j = table.group[sl][order] - g0, table.prev[sl][order], table.recent[sl][order]
        n, s1 = table.count[sl][order].astype(np.float64), table.sum_y[sl][order]
        ends = np.searchsorted(j, np.arange(t), side="right")  # cells with recent <= v: [:ends[v]]
        lap, rhs = np.zeros((b, t, t)), np.zeros((b, t))
        done = 0
        for k, ident in enumerate(idents):
            v = base + 1 + k
            new = slice(done, int(ends[v]))
            done = int(ends[v])
            gi, ii, jj, nn, ss = grp[new], i[new], j[new], n[new], s1[new]
            ti, tj = (gi * t + ii) * t, (gi * t + jj) * t
            entries = np.concatenate([ti + ii, tj + jj, ti + jj, tj + ii])
            np.add.at(lap.reshape(-1), entries, np.concatenate([nn, nn, -nn, -nn]))
            np.add.at(rhs.reshape(-1), np.concatenate([gi * t + jj, gi * t + ii]), np.concatenate([ss, -ss]))
            # as fit_table: only estimated periods enter; the others get identity rows and solve to 0
            m = ident.estimated[g0:g1]
            size = v + 1
            a = decouple(np, lap[:, :size, :size].copy(), m)
            beta = np.linalg.solve(a, np.where(m, rhs[:, :size], 0.0)[:, :, None])[:, :, 0]
            out[k, g0:g1, :size] = np.where(ident.identified[g0:g1], beta, np.nan)
    return out


def vintage_log_index(
    table: CellTable, base: int, method: MethodOptions | None = None, min_pairs: int | None = None
) -> np.ndarray:
    """(V, G, T) log index of the vintages v = base + 1 .. T - 1 (row k: v = base + 1 + k), each
    equal to fit_index(table.truncate(v), base_period=base, method=method, min_pairs=min_pairs)
    of the table's groups; NaN past v and where not identified. Table-based methods only."""
    method = method or MethodOptions()
    host = table.to_host()
    idents = vintage_identifications(host, base, min_pairs)
    ols = ols_vintages(host, idents)
    if method.name == "bmn":
        return ols
    cpu = resolve_backend("cpu")
    out = np.full_like(ols, np.nan)
    for k, ident in enumerate(idents):
        v = base + 1 + k
        part = host.truncate(v)
        if method.name == "case_shiller":
            fit, _ = case_shiller(part, ident, cpu, method, ols_log_index=ols[k, :, : v + 1], covariance=False)
        else:
            fit, _ = fit_method(part, ident, cpu, method, covariance=False)
        out[k, :, : v + 1] = fit.log_index
    return out
