"""Pairs kept on the Dask workers (`DaskPairs`) and the passes over them: the robust fit's
(`DaskPasses`, estimation.methods.robust.PairPasses) and cross-validation's (`DaskFolds`,
analysis.accuracy.FoldPasses), the same steps as in one process; only per-cell and per-group sums
cross the network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend.core import resolve_backend
from ..data.cells import CellTable, merge_tables
from ..io.pairs import PairSource
from .tables import Partition, read_partition, tree_sum


def _partition_pairs(
    source: PairSource, part: Partition, first: int, table: CellTable, backend: str, pooled: bool
) -> Any:
    """The partition's pairs, periods from the whole data's first period, coded by the table's groups."""
    from ..data.pairs import align_groups, pooled_pairs, prepare_pairs

    be = resolve_backend(backend)
    b = read_partition(source, part, be)
    prev, recent = b.periods_from(first)  # the device reader's batches count from their own first period
    pairs = prepare_pairs(
        prev,
        recent,
        b.y,
        b.group,
        n_periods=table.n_periods,
        backend=be,
        price_prev=b.price_prev,
        price_recent=b.price_recent,
    )
    return be, (pooled_pairs(pairs) if pooled else align_groups(pairs, table.group_labels))


def partition_fold_tables(
    source: PairSource,
    part: Partition,
    position: int,
    first: int,
    table: CellTable,
    folds: int,
    backend: str,
    pooled: bool,
) -> list[CellTable]:
    """On a worker: the partition's cell table of each cross-validation fold (host arrays)."""
    from ..analysis.accuracy import fold_tables

    be, pairs = _partition_pairs(source, part, first, table, backend, pooled)
    return [t.to_host() for t in fold_tables(pairs, table.to_backend(be), folds, be, position)]


def partition_fold_errors(
    source: PairSource,
    part: Partition,
    position: int,
    first: int,
    table: CellTable,
    betas: Any,
    backend: str,
    pooled: bool,
) -> tuple[Any, Any, Any]:
    """On a worker: the partition's out-of-fold prediction errors (see analysis.accuracy.fold_errors)."""
    from ..analysis.accuracy import fold_errors

    be, pairs = _partition_pairs(source, part, first, table, backend, pooled)
    err, group, in_table = fold_errors(pairs, table.to_backend(be), betas, be, position)
    return be.to_host(err), be.to_host(group), be.to_host(in_table)  # to the client


class DaskFolds:
    """Cross-validation's passes over the pairs kept on the workers (analysis.accuracy.FoldPasses):
    each partition builds its folds' tables and scores its pairs; folds hash a pair's position in
    the whole dataset, so analysis.accuracy.cross_validate gives the single-process result."""

    def __init__(self, store: DaskPairs, pooled: bool) -> None:
        self.store, self.pooled = store, pooled

    def _each(self, fn: Any, table: CellTable, *args: Any) -> list[Any]:
        store = self.store
        positions = np.concatenate([[0], np.cumsum(store.kept_rows)[:-1]]).astype(int).tolist()
        # a key of its own (hash=False): equal data scattered twice would share one key, and the
        # release of the first copy can lose it while the second is replicated
        shared = store.client.scatter(table.to_host(), broadcast=True, hash=False)
        return store.client.gather(
            [
                store.client.submit(
                    fn, store.source, p, pos, store.first, shared, *args, store.backend, self.pooled, pure=True
                )
                for p, pos in zip(store.parts, positions, strict=True)
            ]
        )

    def fold_tables(self, table: CellTable, folds: int) -> list[CellTable]:
        per_part = self._each(partition_fold_tables, table, folds)
        return [merge_tables([tabs[f] for tabs in per_part]) for f in range(folds)]

    def fold_errors(self, table: CellTable, betas: Any) -> tuple[Any, Any, Any]:
        errors = self._each(partition_fold_errors, table, self.store.client.scatter(betas, broadcast=True, hash=False))
        return tuple(np.concatenate([e[k] for e in errors]) for k in range(3))  # type: ignore[return-value]


@dataclass(frozen=True)
class DaskPairs:
    """The pairs kept on a Dask cluster's workers, partition by partition (read again there when a
    pass needs them): the passes of the robust fit and of cross-validation run as tasks, only
    per-cell and per-group sums travel."""

    client: Any
    source: PairSource
    parts: list[Partition]
    kept_rows: list[int]  # pairs with both periods, per partition (cross-validation's positions)
    first: int
    backend: str  # the workers'
    client_xp: Any  # the namespace the client fits with

    def arrays(self, pooled: bool) -> None:
        """None: the pairs are on the workers, not in this process."""
        return None

    def robust_passes(self, table: CellTable, ident: Any, pooled: bool, c: float) -> DaskPasses:
        host = table.to_host()
        futures = [
            self.client.submit(partition_pairs, self.source, p, self.first, host, self.backend, pooled)
            for p in self.parts
        ]
        return DaskPasses(self.client, futures, host, ident.identified, c, self.backend, self.client_xp)

    def folds(self, pooled: bool) -> DaskFolds:
        return DaskFolds(self, pooled)


def partition_pairs(
    source: PairSource, part: Partition, first: int, table: CellTable, backend: str, pooled: bool
) -> Any:
    """On a worker: the partition's pairs, kept there (a future) for the robust fit's passes."""
    return _partition_pairs(source, part, first, table, backend, pooled)[1]


_BIN_SHIFT = 48  # |e| histogram bins: the top 16 bits of the float64 (exponent and 4 mantissa bits)


def _partition_residuals(pairs: Any, table: CellTable, identified: Any, log_index: Any, backend: str) -> Any:
    """(cell, group, y, e) of the partition's pairs in their base period's component."""
    from ..estimation.methods.cells import CellLookup, cell_ssr

    be = resolve_backend(backend)
    xp = be.xp
    table = table.to_backend(be)  # the client's host copy, with the worker's (device) pairs
    cell, _ = CellLookup(table, be).cells(pairs)
    keep = cell >= 0
    keep[keep] = xp.asarray(identified)[table.group[cell[keep]], table.prev[cell[keep]]]
    cell, y = cell[keep], pairs.y[keep].astype("float64")
    _, d = cell_ssr(table, log_index, be)
    return be, cell, table.group[cell], y, y - d[cell]


def _abs_histogram(pairs: Any, table: CellTable, identified: Any, log_index: Any, backend: str) -> Any:
    be, _, grp, _, e = _partition_residuals(pairs, table, identified, log_index, backend)
    xp = be.xp
    bins = (xp.abs(e).view(xp.int64) >> _BIN_SHIFT).astype(xp.int64)
    return be.to_host(xp.bincount(grp * (1 << 16) + bins, minlength=table.n_groups << 16)).reshape(-1, 1 << 16)


def _abs_in_bins(pairs: Any, table: CellTable, identified: Any, log_index: Any, wanted: Any, backend: str) -> Any:
    """(group, |e|) of the pairs whose |e| falls in a wanted bin of its group ((G, 2) bins)."""

    be, _, grp, _, e = _partition_residuals(pairs, table, identified, log_index, backend)
    xp = be.xp
    a = xp.abs(e)
    bins = (a.view(xp.int64) >> _BIN_SHIFT).astype(xp.int64)
    want = xp.asarray(wanted)
    hit = (bins == want[grp, 0]) | (bins == want[grp, 1])
    return be.to_host(grp[hit]).astype(np.int64), be.to_host(a[hit])


def _weighted_cells(
    pairs: Any, table: CellTable, identified: Any, log_index: Any, scale: Any, c: float, backend: str
) -> Any:
    from ..estimation.methods.robust import huber_weights

    be, cell, grp, y, e = _partition_residuals(pairs, table, identified, log_index, backend)
    xp = be.xp
    w = huber_weights(xp, e / xp.asarray(scale)[grp], c)
    return [be.to_host(xp.bincount(cell, weights=v, minlength=table.n_cells)) for v in (w, w * y, w * y * y)]


def _h1(pairs: Any, table: CellTable, identified: Any, log_index: Any, scale: Any, c: float, backend: str) -> Any:
    from ..estimation.methods.robust import h1_sums

    be, _, grp, _, e = _partition_residuals(pairs, table, identified, log_index, backend)
    return h1_sums(be.xp, e / be.xp.asarray(scale)[grp], grp, table.n_groups, c, be)


def _add(a: Any, b: Any) -> Any:
    return [x + y for x, y in zip(a, b, strict=True)] if isinstance(a, list) else a + b


class DaskPasses:
    """The robust fit's passes over pairs kept on the workers (see estimation.methods.robust.robust_irls). The
    per-group median |e| is exact: a histogram of |e| by its top 16 bits finds the bins of the
    middle order statistics, then only the values in those bins travel to the client."""

    def __init__(
        self,
        client: Any,
        pair_futures: list[Any],
        table: CellTable,
        identified: Any,
        c: float,
        backend: str,
        client_xp: Any,
    ) -> None:
        # backend: the workers'; client_xp: the namespace the client fits with
        self.client, self.pairs, self.c, self.backend, self.xp = client, pair_futures, c, backend, client_xp
        self.table = client.scatter(table, broadcast=True, hash=False)  # as in DaskFolds._each
        self.identified = identified
        self.n_groups, self.n_cells = table.n_groups, table.n_cells

    def _tree(self, fn: Any, *args: Any) -> Any:
        futures = [
            self.client.submit(fn, p, self.table, self.identified, *args, self.backend, pure=False) for p in self.pairs
        ]
        return tree_sum(self.client, futures, _add, pure=False)

    def scale(self, log_index: Any) -> Any:

        from ..estimation.methods.robust import scale_from_mad

        beta = np.nan_to_num(log_index)
        hist = self._tree(_abs_histogram, beta)
        n = hist.sum(axis=1)
        cum = np.cumsum(hist, axis=1)
        ranks = np.stack([(n - 1) // 2, n // 2], axis=1)  # the middle order statistics (0-based)
        wanted = np.stack(
            [[int(np.searchsorted(cum[g], r, side="right")) for r in ranks[g]] for g in range(self.n_groups)]
        )
        parts = self.client.gather(
            [
                self.client.submit(_abs_in_bins, p, self.table, self.identified, beta, wanted, self.backend, pure=False)
                for p in self.pairs
            ]
        )
        grp = np.concatenate([g for g, _ in parts])
        val = np.concatenate([v for _, v in parts])
        median = np.full(self.n_groups, np.nan)
        for g in np.nonzero(n)[0]:
            mine = np.sort(val[grp == g])
            below = cum[g, wanted[g, 0] - 1] if wanted[g, 0] > 0 else 0  # pairs in lower bins
            median[g] = 0.5 * (mine[ranks[g, 0] - below] + mine[ranks[g, 1] - below])
        return scale_from_mad(median)

    def weighted_sums(self, log_index: Any, scale: Any) -> dict[str, Any]:
        n, y, y2 = self._tree(_weighted_cells, log_index, scale, self.c)
        return {"n": self.xp.asarray(n), "y": self.xp.asarray(y), "y2": self.xp.asarray(y2)}

    def h1_sums(self, log_index: Any, scale: Any) -> Any:
        return self._tree(_h1, log_index, scale, self.c)
