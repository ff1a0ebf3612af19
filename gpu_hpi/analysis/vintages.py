"""Vintages: the index as it would have been estimated at each past period, for the revision study.

Vintage v is the index fitted from the cells whose later sale falls in period v or before. Refit
one by one, that is T fits. Here one pass over the cells builds every vintage's normal equations
(a cell's off-diagonal entry is the same in each vintage that has it, at vintage `recent` on; the
diagonal and the right-hand side are cumulative sums over `recent`), and one minimum spanning
tree of the period graph, weighted by `recent`, tells from which vintage on each period is
connected to the base (the largest weight on the tree path between them). Each vintage is then
one Cholesky solve batched over the groups, on the host in float64: the tables are a few MB, and
(G, v, v) solves gain nothing on a GPU.
Case-Shiller adds its stage 2 and weighted solve per vintage on that vintage's cells, starting
from the OLS index; the arithmetic index is refitted vintage by vintage.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from ..backend.core import resolve_backend, usable_cores
from ..backend.lapack import one_blas_thread
from ..backend.ops import solve_spd
from ..data.cells import CellTable
from ..estimation.identify import Identification
from ..estimation.methods import MethodOptions, fit_method
from ..estimation.methods.case_shiller import case_shiller
from ..estimation.normal import group_batches

# numbers in one group batch's vintage systems (vintage_systems' three arrays and the copy being
# solved, (batch, T, T) each): 64 MB
VINTAGE_NUMBERS = 1 << 23


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
    identified), host table: every vintage's normal equations of a batch of groups at once, then
    one solve per vintage. In this thread, with a single-threaded BLAS: on these small systems
    OpenBLAS's threads saved nothing on 2 idle cores and cost 1.4x with one busy (minutes with
    more threads than cores); a thread per core was no faster, its small numpy steps contending
    for the GIL (BENCHMARKS.md)."""
    g, t = table.n_groups, table.n_periods
    out = np.full((len(idents), g, t), np.nan)
    if not idents:
        return out
    base = idents[0].base
    # only the groups the last vintage estimates: a group skipped there (too few pairs) is skipped
    # in every vintage, and its systems would cost as much as an estimated group's
    (alive,) = np.nonzero(~idents[-1].skipped)
    if alive.size == 0:
        return out
    live = live_groups(table, alive)

    def batch(g0: int, g1: int, cells: slice) -> None:
        lap, degree, rhs = vintage_systems(live, g0, g1, cells)
        rows = alive[g0:g1]
        for k, ident in enumerate(idents):
            v = base + 1 + k
            est, identified = ident.estimated[rows], ident.identified[rows]
            out[k, rows, : v + 1] = solve_vintage(lap, degree[v], rhs[v], est, identified)

    # a thread per core over the group batches: the factorisations release the interpreter's lock
    batches = list(group_batches(live, VINTAGE_NUMBERS // 4))
    with one_blas_thread(), ThreadPoolExecutor(max(1, min(usable_cores(), len(batches)))) as pool:
        list(pool.map(lambda b: batch(*b), batches))
    return out


def live_groups(table: CellTable, groups: np.ndarray) -> CellTable:
    """The table of these groups only (sorted codes), coded 0..len(groups) - 1."""
    remap = np.full(table.n_groups, -1, dtype=np.int64)
    remap[groups] = np.arange(groups.size)
    part = table.select(remap[table.group] >= 0)
    return replace(part, group=remap[part.group], group_labels=table.group_labels[groups])


def vintage_systems(table: CellTable, g0: int, g1: int, cells: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normal equations of every vintage of the groups g0..g1 - 1 (their cells: `cells`):
    lap (b, T, T), the Laplacian's off-diagonal entries, and degree, rhs (T, b, T), row v the
    diagonal and the right-hand side of vintage v. A cell (i, j) enters the vintages v >= j with
    the same off-diagonal entry -n in each; only the diagonal and the right-hand side grow with
    v: cumulative sums over the cells' later period."""
    t, b = table.n_periods, g1 - g0
    grp, i, j = table.group[cells] - g0, table.prev[cells], table.recent[cells]
    n, s1 = table.count[cells].astype(np.float64), table.sum_y[cells]
    lap = np.zeros((b, t, t))
    lap[grp, i, j] = lap[grp, j, i] = -n  # one cell per (group, i, j)
    at = np.concatenate([(j * b + grp) * t + i, (j * b + grp) * t + j])  # (vintage j, group, period)
    degree, rhs = (
        np.bincount(at, np.concatenate(w), minlength=t * b * t).reshape(t, b, t).cumsum(axis=0)
        for w in ((n, n), (-s1, s1))
    )
    return lap, degree, rhs


def solve_vintage(
    lap: np.ndarray, degree: np.ndarray, rhs: np.ndarray, estimated: np.ndarray, identified: np.ndarray
) -> np.ndarray:
    """(b, v + 1) log index of one vintage (estimated, identified: (b, v + 1), its periods so;
    degree, rhs: (b, T), its row of vintage_systems), NaN where not identified. As fit_table: only
    the estimated periods enter, the others (the base and the periods not yet connected, few) get
    identity rows and columns, set one by one rather than by decouple()'s passes over the stack,
    and solve to 0."""
    m, size = estimated, estimated.shape[1]
    a = lap[:, :size, :size].copy()
    gu, pu = np.nonzero(~m)
    a[gu, pu, :] = 0.0
    a[gu, :, pu] = 0.0
    diagonal = np.arange(size)
    a[:, diagonal, diagonal] = np.where(m, degree[:, :size], 1.0)
    beta, _ = solve_spd(np, a, np.where(m, rhs[:, :size], 0.0), covariance=False)
    return np.where(identified, beta, np.nan)


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
