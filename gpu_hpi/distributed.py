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
from dataclasses import dataclass
from typing import Any

from .backend import resolve_backend
from .cells import CellTable, TableAccumulator
from .errors import ConfigError, DataError
from .io import PairSource, parquet_file

DASK_EXTRA_HINT = "install the dask extra: pip install 'gpu_hpi[dask]'"


@dataclass(frozen=True)
class Partition:
    """Row groups of one parquet file read as one task."""

    path: str
    row_groups: tuple[int, ...]
    n_rows: int


def partitions(source: PairSource) -> list[Partition]:
    """Row groups gathered up to ~batch_rows rows per partition, from the files' metadata."""
    files, fmt = source.files()
    if fmt != "parquet":
        raise ConfigError("a Dask cluster reads parquet datasets; convert the CSV to parquet or use cluster=none")
    parts: list[Partition] = []
    for path in files:
        meta = parquet_file(path).metadata
        pending: list[int] = []
        rows = 0
        for k in range(meta.num_row_groups):
            pending.append(k)
            rows += meta.row_group(k).num_rows
            if rows >= source.batch_rows:
                parts.append(Partition(path, tuple(pending), rows))
                pending, rows = [], 0
        if pending:
            parts.append(Partition(path, tuple(pending), rows))
    return parts


PartialTable = tuple[int, CellTable | None, int]  # (first period, table or None if empty, null-period rows)


def partition_table(
    source: PairSource, part: Partition, start: int | None, end: int | None, backend: str, strict: bool
) -> PartialTable:
    """On a worker: read the partition, convert its periods, build its cell table (host arrays)."""
    be = resolve_backend(backend)
    table = parquet_file(part.path).read_row_groups(list(part.row_groups), columns=list(source.wanted().values()))
    batch = source.convert(table, source.wanted())
    if batch.n_rows == 0:
        return 0, None, batch.missing_period
    offset, cells = batch.cell_table(start, end, be, strict)
    return offset, cells.to_host(), batch.missing_period


def add_partial(a: PartialTable, b: PartialTable) -> PartialTable:
    """Sum two partial tables (aligning their windows): the reduction of the tree."""
    acc = TableAccumulator()
    for offset, table, _ in (a, b):
        if table is not None:
            acc.add(offset, table)
    if not acc.parts:
        return 0, None, a[2] + b[2]
    offset, table = acc.total()
    return offset, table, a[2] + b[2]


@contextlib.contextmanager
def cluster_client(cluster: Any, memory: Any) -> Iterator[Any]:
    """A dask.distributed Client for the `cluster` config: a running scheduler (cluster.address),
    a LocalCluster (kind=local) or dask-cuda's LocalCUDACluster (kind=cuda, RMM pool per worker)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(f"cluster={cluster.kind} needs dask.distributed ({exc}); {DASK_EXTRA_HINT}") from None
    logging.getLogger("distributed").setLevel(logging.WARNING)  # not the scheduler's INFO chatter
    if cluster.address:
        with Client(cluster.address) as client:
            yield client
        return
    if cluster.kind == "cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise ConfigError(f"cluster=cuda needs dask-cuda ({exc}); install the GPU and dask extras") from None
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
            dashboard_address=None,
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
) -> tuple[int, CellTable, int]:
    """(first period, summed table, rows dropped for a null period) of the dataset's partitions."""
    from distributed import as_completed

    if not parts:
        raise DataError("the input holds no pairs")
    futures = [client.submit(partition_table, source, p, start, end, backend, strict, pure=True) for p in parts]
    rows = {f.key: p.n_rows for f, p in zip(futures, parts, strict=True)}
    for future in as_completed(futures):
        if progress is not None:
            progress(rows[future.key])
    level = futures
    while len(level) > 1:  # tree reduction on the workers: log2(partitions) rounds
        nxt = [client.submit(add_partial, a, b, pure=True) for a, b in zip(level[::2], level[1::2], strict=False)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    offset, table, missing = level[0].result()
    if table is None:
        raise DataError("the input holds no pairs")
    if start is not None or end is not None:
        acc = TableAccumulator()
        acc.add(offset, table)
        offset, table = acc.total(start, end)
    return offset, table, missing
