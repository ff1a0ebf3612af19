"""Vintages: the index as it would have been estimated at each past period, for the revision study.

Vintage v is the index fitted from the cells whose later sale falls in period v or before. Refit
one by one, that is T fits. Here one pass over the cells builds every vintage's normal equations
(a cell's off-diagonal entry is the same in each vintage that has it, at vintage `recent` on; the
diagonal and the right-hand side are cumulative sums over `recent`), and one minimum spanning
tree of the period graph, weighted by `recent`, tells from which vintage on each period is
connected to the base (the largest weight on the tree path between them). Each vintage is then
one Cholesky solve per group, on the host in float64: the tables are a few MB, and (G, v, v)
solves gain nothing on a GPU. The groups go a batch at a time, each batch's vintages handed on
as a (b, V, T) block (the revision's statistics are taken from it and it is dropped), so that
the memory is a batch's, not the (V, G, T) stack's, and only the groups that the last vintage
estimates are solved.

The cost is that of the factorisations, sum over v of v^3 / 3 per group (19M flops for 123
periods). Vintage v's normal matrix is not the leading block of the full one (its diagonal
counts only the pairs sold again by v: leading blocks of the full matrix would put the later
pairs' weight on it), so one factor cannot serve every vintage. Vintage v differs from v - 1 only
from the earliest first sale of the pairs sold again in v on, so the factor's columns before it
carry over; refactoring only the rest (a rank update by dsyrk, then dpotrf) cut the flops by a
third on 10,000 regions but not the time: on systems of 20 to 120 periods LAPACK's calls cost
what they cost, not their flops.
Case-Shiller adds its stage 2 and weighted solve per vintage on that vintage's cells, starting
from the batch's OLS vintages (weighted_vintages.py); the arithmetic index is refitted vintage by
vintage.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from ..backend.core import resolve_backend, usable_cores
from ..backend.lapack import copy_solve, one_blas_thread
from ..backend.ops import solve_spd
from ..data.cells import CellTable
from ..estimation.identify import Identification
from ..estimation.methods import MethodOptions, fit_method
from ..estimation.normal import group_batches
from .weighted_vintages import case_shiller_block

# numbers in one group batch's vintage systems (vintage_systems' three arrays, (batch, T, T) each,
# and the block of results): 64 MB
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


@dataclass(frozen=True)
class VintageReach:
    """Each vintage's identification in two (G, T) arrays instead of V Identifications of (G, T)
    each (1.5 GB at 100,000 groups of 123 periods): first, first_connected(); n_pairs[:, v], the
    pairs of vintage v (host arrays). min_pairs None: each vintage's number of periods, v + 1."""

    first: np.ndarray
    n_pairs: np.ndarray
    base: int
    min_pairs: int | None

    @property
    def n_vintages(self) -> int:
        return max(0, self.first.shape[1] - self.base - 1)

    def skipped(self, k: int) -> np.ndarray:
        """(G,) bool: the groups vintage base + 1 + k skips (too few pairs)."""
        v = self.base + 1 + k
        return self.n_pairs[:, v] < (v + 1 if self.min_pairs is None else self.min_pairs)

    def identified(self, k: int, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(b, v + 1) bool: the periods vintage v = base + 1 + k identifies in these groups."""
        v = self.base + 1 + k
        return (self.first[rows, : v + 1] <= v) & ~self.skipped(k)[rows, None]

    def identification(self, k: int, rows: np.ndarray | slice = slice(None)) -> Identification:
        """Vintage base + 1 + k's Identification of these groups."""
        v = self.base + 1 + k
        return Identification(self.identified(k, rows), self.skipped(k)[rows], self.n_pairs[rows, v], self.base)


def vintage_reach(table: CellTable, base: int, min_pairs: int | None) -> VintageReach:
    """The vintages' identification (host table), from one tree over the groups that some vintage
    does not skip (too few pairs): the others cost nothing."""
    g, t = table.n_groups, table.n_periods
    per_period = np.bincount(table.group * t + table.recent, weights=table.count, minlength=g * t)
    n_pairs = np.rint(np.cumsum(per_period.reshape(g, t), axis=1)).astype(np.int64)
    first = np.full((g, t), t, dtype=np.int64)
    # min_pairs None asks v + 1 pairs of vintage v: a group can pass early and fail at the end
    needed = np.arange(base + 2, t + 1) if min_pairs is None else min_pairs
    (alive,) = np.nonzero((n_pairs[:, base + 1 :] >= needed).any(axis=1))
    if alive.size == g:
        first = first_connected(table, base)
    elif alive.size:
        first[alive] = first_connected(live_groups(table, alive), base)
    return VintageReach(first, n_pairs, base, min_pairs)


def vintage_identifications(table: CellTable, base: int, min_pairs: int | None) -> list[Identification]:
    """identify(table.truncate(v), base, min_pairs) for v = base + 1 .. T - 1, from one tree (host
    table); min_pairs None: each vintage's number of periods, v + 1, as fit_index's default."""
    reach = vintage_reach(table, base, min_pairs)
    return [reach.identification(k) for k in range(reach.n_vintages)]


def ols_vintages(table: CellTable, reach: VintageReach, method: MethodOptions | None = None) -> np.ndarray:
    """(V, G, T) OLS log index of each vintage v = base + 1 + k (NaN past v and where not
    identified), host table: ols_vintage_blocks gathered (with `method`, as they go on)."""
    out = np.full((reach.n_vintages, table.n_groups, table.n_periods), np.nan)

    def gather(rows: np.ndarray, block: np.ndarray) -> None:
        out[:, rows] = block.transpose(1, 0, 2)

    ols_vintage_blocks(table, reach, gather, method)
    return out


def ols_vintage_blocks(
    table: CellTable,
    reach: VintageReach,
    consume: Callable[[np.ndarray, np.ndarray], None],
    method: MethodOptions | None = None,
) -> None:
    """The OLS log index of every vintage, a batch of groups at a time: consume(rows, block) with
    block (b, V, T), row k the vintage v = base + 1 + k (NaN past v and where not identified) of
    the groups `rows`, called from a worker thread once per batch (disjoint rows). Only the groups
    the last vintage estimates are solved (the others are NaN throughout and never passed): a
    skipped group would cost as much as an estimated one. Each batch builds every vintage's
    normal equations at once, then solves one vintage after another. In threads, with a
    single-threaded BLAS: on these small systems OpenBLAS's threads saved nothing on 2 idle cores
    and cost 1.4x with one busy (minutes with more threads than cores); a thread per core was no
    faster, its small numpy steps contending for the GIL (BENCHMARKS.md). A `weighted` method goes
    on from each batch's OLS vintages (case_shiller_block), in the threads a batch leaves."""
    if reach.n_vintages == 0:
        return
    (alive,) = np.nonzero(~reach.skipped(reach.n_vintages - 1))
    if alive.size == 0:
        return
    live = live_groups(table, alive)

    # a thread per core over the group batches: the factorisations release the interpreter's lock
    batches = list(group_batches(live, VINTAGE_NUMBERS // 4))
    workers = max(1, min(usable_cores(), len(batches)))

    def batch(g0: int, g1: int, cells: slice) -> None:
        rows = alive[g0:g1]
        block = solve_batch(live, reach, rows, g0, g1, cells)
        if method is not None and weighted(method):
            vintage = functools.partial(reach.identification, rows=rows)
            block = case_shiller_block(live, vintage, g0, cells, block, method, usable_cores() // workers)
        consume(rows, block)

    with one_blas_thread(), ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda b: batch(*b), batches))


def weighted(method: MethodOptions) -> bool:
    """Case-Shiller with its stage 2 on squared residuals (the |e| one needs the pairs)."""
    return method.name == "case_shiller" and method.stage2 == "squared"


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


def solve_batch(table: CellTable, reach: VintageReach, rows: np.ndarray, g0: int, g1: int, cells: slice) -> np.ndarray:
    """(b, V, T) log index of every vintage of the groups g0..g1 - 1 of `table` (their cells:
    `cells`; rows: their rows in `reach`), NaN past each vintage and where not identified. As
    fit_table: only the estimated periods enter, the others get identity rows and columns and
    solve to 0: the base's set once in the batch's systems (vintage_systems' off-diagonal
    entries, whose diagonal each vintage then sets), those of the periods not yet connected (few)
    only in the systems that have them; a system with nothing to estimate (a skipped group, or
    only the base reached) is not solved."""
    base, t, b = reach.base, table.n_periods, g1 - g0
    lap, degree, rhs = vintage_systems(table, g0, g1, cells)
    lap[:, base, :] = 0.0
    lap[:, :, base] = 0.0
    block = np.full((b, reach.n_vintages, t), np.nan)
    for k in range(reach.n_vintages):
        v = base + 1 + k
        size = v + 1
        identified = reach.identified(k, rows)
        block[:, k, :size] = np.where(identified, 0.0, np.nan)
        est = identified.copy()
        est[:, base] = False
        (sel,) = np.nonzero(est.any(axis=1))
        if sel.size == 0:
            continue
        m = est[sel]
        diagonal = np.arange(size)
        lap[sel[:, None], diagonal, diagonal] = np.where(m, degree[v][sel, :size], 1.0)
        beta = np.where(m, rhs[v][sel, :size], 0.0)
        gaps = ~m
        gaps[:, base] = False
        odd = gaps.any(axis=1)
        if odd.any():  # periods not yet connected to the base: identity rows and columns
            a = lap[sel[odd], :size, :size]
            a = np.where(m[odd, :, None] & m[odd, None, :], a, 0.0)
            a[:, diagonal, diagonal] = np.where(m[odd], degree[v][sel[odd], :size], 1.0)
            beta[odd], _ = solve_spd(np, a, beta[odd], covariance=False)
        (plain,) = np.nonzero(~odd)
        solved = np.ascontiguousarray(beta[plain])
        copy_solve(lap, sel[plain], size, solved)
        beta[plain] = solved
        block[sel, k, :size] = np.where(identified[sel], beta, np.nan)
    return block


def vintage_log_index(
    table: CellTable, base: int, method: MethodOptions | None = None, min_pairs: int | None = None
) -> np.ndarray:
    """(V, G, T) log index of the vintages v = base + 1 .. T - 1 (row k: v = base + 1 + k), each
    equal to fit_index(table.truncate(v), base_period=base, method=method, min_pairs=min_pairs)
    of the table's groups; NaN past v and where not identified. Table-based methods only."""
    method = method or MethodOptions()
    host = table.to_host()
    reach = vintage_reach(host, base, min_pairs)
    if method.name == "bmn" or weighted(method):
        return ols_vintages(host, reach, method)
    cpu = resolve_backend("cpu")
    out = np.full((reach.n_vintages, host.n_groups, host.n_periods), np.nan)
    for k in range(reach.n_vintages):  # the other methods: refitted vintage by vintage
        v = base + 1 + k
        fit, _ = fit_method(host.truncate(v), reach.identification(k), cpu, method, covariance=False)
        out[k, :, : v + 1] = fit.log_index
    return out


def vintage_blocks(
    table: CellTable,
    base: int,
    consume: Callable[[np.ndarray, np.ndarray], None],
    method: MethodOptions | None = None,
    min_pairs: int | None = None,
) -> None:
    """vintage_log_index() a batch of groups at a time: consume(rows, block), block (b, V, T) the
    vintages of the groups `rows` (disjoint; groups never passed have no estimate in any vintage),
    possibly from worker threads. The OLS index (bmn) never holds more than the batches in flight,
    so that the memory does not grow with the groups; the other methods refit the whole table
    vintage by vintage, and their (V, G, T) stack is passed on in slices."""
    method = method or MethodOptions()
    if method.name == "bmn" or weighted(method):
        host = table.to_host()
        ols_vintage_blocks(host, vintage_reach(host, base, min_pairs), consume, method)
        return
    stack = vintage_log_index(table, base, method, min_pairs)
    step = max(1, VINTAGE_NUMBERS // max(1, stack.shape[0] * stack.shape[2]))
    for g0 in range(0, stack.shape[1], step):
        rows = np.arange(g0, min(g0 + step, stack.shape[1]))
        consume(rows, stack[:, rows].transpose(1, 0, 2))
