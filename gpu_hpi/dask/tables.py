"""Dask execution: every partition of a parquet dataset becomes a cell table on its worker, the
tables are summed in a tree, and the client solves the (small) summed table.

Partitions are whole row groups (about `data.batch_rows` rows each), read by the worker itself
(DuckDB, or libcudf on GPU workers), so no pair crosses the network; only cell tables do. Tasks are
pure functions of their partition: a task lost with a worker is simply computed again elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..backend.core import resolve_backend
from ..data.cells import CellTable, TableAccumulator
from ..errors import ConfigError, DataError
from ..io import device, device_pairs
from ..io.files import parquet_file
from ..io.pairs import PairSource
from ..io.sql import Unsupported
from ..io.sql_pairs import sql_cell_table


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
    """The partition as a PairBatch: decoded on the device on GPU workers where pylibcudf is
    installed (the columns then never touch the host), else by pyarrow."""
    columns = list(source.wanted().values())
    schema = parquet_file(part.path).schema_arrow
    if device.serves(backend):
        ops = device.Ops(device.library())
        read = ops.read_parquet(part.path, columns, list(part.row_groups))
        return device_pairs.convert(source, ops, read, source.wanted(), schema)
    return source.convert(
        parquet_file(part.path).read_row_groups(list(part.row_groups), columns=columns), source.wanted()
    )


def partition_table(
    source: PairSource, part: Partition, start: int | None, end: int | None, backend: str, strict: bool
) -> PartialTable:
    """On a worker: read the partition, convert its periods, build its cell table (host arrays):
    libcudf's reader on GPU workers with pylibcudf, else the DuckDB query of the single-process reader
    over the partition's rows (io/sql_pairs.py: its table is host arrays either way), or the batch
    reader where that query leaves the file to pyarrow."""
    be = resolve_backend(backend)
    if not device.serves(be):
        rows = (part.first_row, part.first_row + part.n_rows)
        try:
            reduced = sql_cell_table(replace(source, path=part.path), start, end, strict, rows=rows)
        except (
            DataError,
            Unsupported,
        ):  # no row with both periods (the batch reader counts it), or a column for pyarrow
            pass
        else:
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
    offset, table, missing, _ = tree_sum(client, futures, add_partial, pure=True)
    if table is None:
        raise DataError("the input holds no pairs")
    if start is not None or end is not None:
        acc = TableAccumulator()
        acc.add(offset, table)
        offset, table = acc.total(start, end)
    return offset, table, missing, kept_rows


def tree_sum(client: Any, futures: list[Any], combine: Any, pure: bool) -> Any:
    """The results of futures combined pairwise on the workers, log2(len) rounds; the total to the client."""
    level = futures
    while len(level) > 1:
        nxt = [client.submit(combine, a, b, pure=pure) for a, b in zip(level[::2], level[1::2], strict=False)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return level[0].result()


def _head(partial: PartialTable) -> PartialTable:
    """The partial table without its cells (only its counts travel back to the client)."""
    return partial[0], None, partial[2], partial[3]
