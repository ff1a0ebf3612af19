"""Dask execution: every partition of a parquet dataset becomes a cell table on its worker, the
tables are summed in a tree, and the client solves the (small) summed table.

Partitions are whole row groups (about `data.batch_rows` rows each), read by the worker itself
(pyarrow, or cudf on GPU workers), so no pair crosses the network; only cell tables do. Tasks are
pure functions of their partition: a task lost with a worker is simply computed again elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from .backend.core import resolve_backend
from .data.cells import CellTable, TableAccumulator
from .errors import ConfigError, DataError
from .io.files import cudf_module, parquet_file
from .io.pairs import PairSource
from .io.sql import sql_cell_table

DASK_EXTRA_HINT = "install the dask extra: pip install 'gpu_hpi[dask]'"


@dataclass(frozen=True)
class Partition:
    """Row groups of one parquet file read as one task."""

    path: str
    row_groups: tuple[int, ...]
    n_rows: int
    first_row: int = 0  # the file's row at which the partition starts (its row groups are consecutive)


def partitions(source: PairSource) -> list[Partition]:
    """Row groups gathered up to ~batch_rows rows per partition, from the files' metadata."""
    files, fmt = source.files()
    if fmt != "parquet":
        raise ConfigError("a Dask cluster reads parquet datasets; convert the CSV to parquet or use cluster=none")
    parts: list[Partition] = []
    for path in files:
        meta = parquet_file(path).metadata
        pending: list[int] = []
        rows = first = 0
        for k in range(meta.num_row_groups):
            pending.append(k)
            rows += meta.row_group(k).num_rows
            if rows >= source.batch_rows:
                parts.append(Partition(path, tuple(pending), rows, first))
                pending, first, rows = [], first + rows, 0
        if pending:
            parts.append(Partition(path, tuple(pending), rows, first))
    return parts


# (first period, table or None if empty, rows dropped for a null period, rows kept)
PartialTable = tuple[int, CellTable | None, int, int]


def read_partition(source: PairSource, part: Partition, backend: Any) -> Any:
    """The partition as a PairBatch: decoded by cudf on GPU workers where it is installed (the
    columns then never touch the host), else by pyarrow."""
    columns = list(source.wanted().values())
    if backend.is_gpu and cudf_module() is not None:
        import cudf

        try:
            frame = cudf.read_parquet(part.path, columns=columns, row_groups=[list(part.row_groups)])
        except Exception as exc:  # cudf raises RuntimeError / OSError / ValueError variants
            raise DataError(f"cannot read {part.path}: {exc}") from exc
        return source.convert_device(frame, source.wanted())
    return source.convert(
        parquet_file(part.path).read_row_groups(list(part.row_groups), columns=columns), source.wanted()
    )


def partition_table(
    source: PairSource, part: Partition, start: int | None, end: int | None, backend: str, strict: bool
) -> PartialTable:
    """On a worker: read the partition, convert its periods, build its cell table (host arrays):
    on the CPU the DuckDB query of the single-process reader over the partition's rows (sql.py),
    on the GPU (or where that query leaves the file to pyarrow) the batch reader."""
    be = resolve_backend(backend)
    if not be.is_gpu:
        rows = (part.first_row, part.first_row + part.n_rows)
        try:
            reduced = sql_cell_table(replace(source, path=part.path), start, end, strict, rows=rows)
        except DataError:
            reduced = None  # e.g. no row with both periods: the batch reader counts it as such
        if reduced is not None:
            table = reduced.table
            return reduced.first, table, reduced.missing_period, table.n_pairs + sum(table.dropped.values())
    batch = read_partition(source, part, be)
    if batch.n_rows == 0:
        return 0, None, batch.missing_period, 0
    offset, cells = batch.cell_table(start, end, be, strict)
    return offset, cells.to_host(), batch.missing_period, batch.n_rows


def add_partial(a: PartialTable, b: PartialTable) -> PartialTable:
    """Sum two partial tables (aligning their windows): the reduction of the tree."""
    acc = TableAccumulator()
    for offset, table, _, _ in (a, b):
        if table is not None:
            acc.add(offset, table)
    if not acc.parts:
        return 0, None, a[2] + b[2], a[3] + b[3]
    offset, table = acc.total()
    return offset, table, a[2] + b[2], a[3] + b[3]


@contextlib.contextmanager
def cluster_client(cluster: Any, memory: Any) -> Iterator[Any]:
    """A dask.distributed Client for the `cluster` config: a running scheduler (cluster.address),
    a LocalCluster (kind=local) or dask-cuda's LocalCUDACluster (kind=cuda, RMM pool per worker)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(f"cluster={cluster.kind} needs dask.distributed ({exc}); {DASK_EXTRA_HINT}") from exc
    logging.getLogger("distributed").setLevel(logging.WARNING)  # not the scheduler's INFO chatter
    if cluster.address:
        with Client(cluster.address) as client:
            yield client
        return
    if cluster.kind == "cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise ConfigError(f"cluster=cuda needs dask-cuda ({exc}); install the GPU and dask extras") from exc
        kwargs: dict[str, Any] = {"rmm_pool_size": memory.initial_pool_size} if memory.pool else {}
        if memory.managed_memory:
            kwargs["rmm_managed_memory"] = True
        local = LocalCUDACluster(n_workers=cluster.n_workers, **kwargs)
    else:
        local = LocalCluster(
            n_workers=cluster.n_workers,
            threads_per_worker=cluster.threads_per_worker,
            processes=True,
            memory_limit=cluster.memory_limit,
            dashboard_address=":0",  # any free port: never collide with another cluster's dashboard
        )
    with local, Client(local) as client:
        yield client


def dask_cell_table(
    client: Any,
    source: PairSource,
    parts: list[Partition],
    start: int | None,
    end: int | None,
    backend: str,
    strict: bool,
    progress: Any = None,
) -> tuple[int, CellTable, int, list[int]]:
    """(first period, summed table, rows dropped for a null period, rows kept per partition) of the
    dataset's partitions."""
    from distributed import as_completed

    if not parts:
        raise DataError("the input holds no pairs")
    futures = [client.submit(partition_table, source, p, start, end, backend, strict, pure=True) for p in parts]
    rows = {f.key: p.n_rows for f, p in zip(futures, parts, strict=True)}
    for future in as_completed(futures):
        if progress is not None:
            progress(rows[future.key])
    kept_rows = [int(r[3]) for r in client.gather([client.submit(_head, f, pure=True) for f in futures])]
    level = futures
    while len(level) > 1:  # tree reduction on the workers: log2(partitions) rounds
        nxt = [client.submit(add_partial, a, b, pure=True) for a, b in zip(level[::2], level[1::2], strict=False)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    offset, table, missing, _ = level[0].result()
    if table is None:
        raise DataError("the input holds no pairs")
    if start is not None or end is not None:
        acc = TableAccumulator()
        acc.add(offset, table)
        offset, table = acc.total(start, end)
    return offset, table, missing, kept_rows


def _head(partial: PartialTable) -> PartialTable:
    """The partial table without its cells (only its counts travel back to the client)."""
    return partial[0], None, partial[2], partial[3]


def _partition_pairs(
    source: PairSource, part: Partition, first: int, table: CellTable, backend: str, pooled: bool
) -> Any:
    """The partition's pairs, periods from the whole data's first period, coded by the table's groups."""
    from .data.pairs import align_groups, pooled_pairs, prepare_pairs

    be = resolve_backend(backend)
    b = read_partition(source, part, be)
    pairs = prepare_pairs(
        b.prev - first,
        b.recent - first,
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
    from .diagnostics import fold_tables

    be, pairs = _partition_pairs(source, part, first, table, backend, pooled)
    return [t.to_host() for t in fold_tables(pairs, table, folds, be, position)]


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
    """On a worker: the partition's out-of-fold prediction errors (see diagnostics.fold_errors)."""
    from .diagnostics import fold_errors

    be, pairs = _partition_pairs(source, part, first, table, backend, pooled)
    return fold_errors(pairs, table, betas, be, position)


def dask_accuracy(
    client: Any,
    source: PairSource,
    parts: list[Partition],
    kept_rows: list[int],
    first: int,
    table: CellTable,
    refit: Any,
    base: int,
    folds: int,
    backend: str,
    pooled: bool,
) -> Any:
    """k-fold cross-validation with the passes over the pairs as tasks: each partition builds its
    folds' tables, the client fits each fold's complement, each partition scores its pairs. Folds
    hash a pair's position in the whole dataset, so the result equals the single-process one."""
    import numpy as np

    from .data.cells import merge_tables
    from .diagnostics import accuracy_stats, check_folds, fold_betas

    check_folds(folds)
    positions = np.concatenate([[0], np.cumsum(kept_rows)[:-1]]).astype(int).tolist()
    shared = client.scatter(table, broadcast=True)
    per_part = client.gather(
        [
            client.submit(partition_fold_tables, source, p, pos, first, shared, folds, backend, pooled, pure=True)
            for p, pos in zip(parts, positions, strict=True)
        ]
    )
    tables = [merge_tables([tabs[f] for tabs in per_part]) for f in range(folds)]
    betas = fold_betas(table, tables, refit, base)
    shared_betas = client.scatter(betas, broadcast=True)
    errors = client.gather(
        [
            client.submit(
                partition_fold_errors, source, p, pos, first, shared, shared_betas, backend, pooled, pure=True
            )
            for p, pos in zip(parts, positions, strict=True)
        ]
    )
    err, grp, in_table = (np.concatenate([e[k] for e in errors]) for k in range(3))
    return accuracy_stats(err, grp, in_table, table.group_labels, folds)


def partition_pairs(
    source: PairSource, part: Partition, first: int, table: CellTable, backend: str, pooled: bool
) -> Any:
    """On a worker: the partition's pairs, kept there (a future) for the robust fit's passes."""
    return _partition_pairs(source, part, first, table, backend, pooled)[1]


_BIN_SHIFT = 48  # |e| histogram bins: the top 16 bits of the float64 (exponent and 4 mantissa bits)


def _partition_residuals(pairs: Any, table: CellTable, identified: Any, log_index: Any, backend: str) -> Any:
    """(cell, group, y, e) of the partition's pairs in their base period's component."""
    from .estimation.methods.cells import CellLookup, cell_ssr

    be = resolve_backend(backend)
    xp = be.xp
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
    import numpy as np

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
    from .estimation.methods.robust import huber_weights

    be, cell, grp, y, e = _partition_residuals(pairs, table, identified, log_index, backend)
    xp = be.xp
    w = huber_weights(xp, e / xp.asarray(scale)[grp], c)
    return [be.to_host(xp.bincount(cell, weights=v, minlength=table.n_cells)) for v in (w, w * y, w * y * y)]


def _h1(pairs: Any, table: CellTable, identified: Any, log_index: Any, scale: Any, c: float, backend: str) -> Any:
    from .estimation.methods.robust import h1_sums

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
        self.table = client.scatter(table, broadcast=True)
        self.identified = identified
        self.n_groups, self.n_cells = table.n_groups, table.n_cells

    def _tree(self, fn: Any, *args: Any) -> Any:
        level = [
            self.client.submit(fn, p, self.table, self.identified, *args, self.backend, pure=False) for p in self.pairs
        ]
        while len(level) > 1:
            nxt = [self.client.submit(_add, a, b, pure=False) for a, b in zip(level[::2], level[1::2], strict=False)]
            level = nxt + ([level[-1]] if len(level) % 2 else [])
        return level[0].result()

    def scale(self, log_index: Any) -> Any:
        import numpy as np

        from .estimation.methods.robust import scale_from_mad

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
