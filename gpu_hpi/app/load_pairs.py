"""Reading pairs: the synthetic market, pair files by DuckDB, pyarrow or libcudf (app/plan.py picks
the reader), or on a Dask cluster, each batch into its cell table (and the pairs, where a method
needs them)."""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ..backend.core import Backend, array_namespace, to_host, usable_cores
from ..backend.memory import device_read_budget
from ..config import AppConfig, option_name
from ..data.calendar import parse_period
from ..data.cells import CellTable, TableAccumulator
from ..data.pairs import GroupCodes, Pairs, prepare_pairs
from ..errors import ConfigError, DataError
from ..estimation.methods import MethodOptions
from ..io.pair_batch import PairBatch, ready
from ..io.pairs import PairSource
from ..io.sql_pairs import sql_batch, sql_cell_table
from ..synthetic import SyntheticMarket
from .loaded import Loaded, input_window
from .plan import Reader
from .stages import Timings, progress_bar


def load_pairs(
    reader: Reader,
    cfg: AppConfig,
    periodicity: str,
    backend: Backend,
    method: MethodOptions,
    strict: bool,
    keep_pairs: bool,
    timings: Timings,
    resources: contextlib.ExitStack,
    frame: Any = None,
) -> Loaded:
    """Pairs by this reader (synthetic, DuckDB, pyarrow batches, libcudf, Dask) into their cell
    table, batch by batch (bounded memory unless kept); DuckDB's readers raise io.sql.Unsupported
    for a column they leave to pyarrow."""
    market = None
    one_batch = False  # DuckDB read every pair at once (a table then uses every core)
    if reader is Reader.SYNTHETIC:
        d = cfg.data
        try:
            market = SyntheticMarket.create(d.n_pairs, d.n_periods, d.n_groups, d.seed, d.noise_sd, d.mean_holding)
        except ValueError as exc:
            raise ConfigError(f"synthetic market: {exc}") from exc
        first = parse_period(d.start, "month")
        if periodicity != "month":
            raise ConfigError("the synthetic market is monthly; use index.periodicity=month")
        start: int | None = first
        end: int | None = first + d.n_periods - 1
        jobs: Iterator[Callable[[], PairBatch]] = (
            functools.partial(ready, b) for b in _synthetic_batches(market, first, method.name == "arithmetic")
        )
        total_rows: int | None = d.n_pairs
    else:
        start, end = input_window(cfg.data, periodicity)
        source = pair_source(cfg, periodicity, backend if reader is Reader.DEVICE_PAIRS else None)
        source = replace(source, frame=frame)
        total_rows = source.count_rows()
        if reader is Reader.DASK:
            return _dask_pairs(cfg, source, start, end, backend, strict, method, total_rows, timings, resources)
        on_device = reader is Reader.DEVICE_PAIRS
        jobs = source.batch_jobs(gpu=on_device, arrays=keep_pairs)  # the table alone: libcudf's columns, no CuPy
        if reader is Reader.DUCKDB_TABLE:  # the cell table alone: one query (io/sql_pairs.py)
            with timings.stage("read_and_table"):
                reduced = sql_cell_table(source, start, end, strict, progress=bool(cfg.progress))
            return Loaded(reduced.table, reduced.first, None, {"missing_period": reduced.missing_period})
        if reader is Reader.DUCKDB_PAIRS:  # the pairs, as one batch (its table then uses every core)
            with timings.stage("read_and_table"):
                batch = sql_batch(source, progress=bool(cfg.progress))
            jobs, one_batch = iter([functools.partial(ready, batch)]), True

    acc = TableAccumulator()
    kept: list[PairBatch] = []  # iterative solvers, the robust method and accuracy need the pairs
    # batches in parallel, one thread each: on the CPU all of the work; on the GPU (pyarrow
    # decoding on the host) the next batches' decoding overlaps this one's copy and table
    workers = usable_cores()
    if one_batch or reader is Reader.DEVICE_PAIRS:
        workers = 1  # one batch, or device-resident batches: nothing on the host to overlap
    elif reader not in (Reader.ARROW_BATCHES, Reader.FRAME_BATCHES):
        workers = backend.workers(workers)  # synthetic batches: made on the device where there is one

    def convert_and_reduce(job: Callable[[], PairBatch]) -> tuple[PairBatch, tuple[int, CellTable] | None]:
        batch = job()
        if batch.n_rows == 0:  # e.g. an empty part file, or a batch of null periods only
            return batch, None
        return batch, batch.cell_table(start, end, backend, strict, threads=1 if workers > 1 else None)

    with progress_bar(bool(cfg.progress), total_rows) as advance, timings.stage("read_and_table", backend):
        for batch, reduced in _parallel_map(convert_and_reduce, jobs, workers):
            acc.missing_period += batch.missing_period
            if advance is not None:
                advance(batch.n_rows + batch.missing_period)
            if reduced is not None:
                acc.add(reduced[0], reduced[1].to_host())  # tables are summed on the host: a few MB
                if keep_pairs:
                    kept.append(batch)
        if not acc.parts:
            raise DataError("the input holds no pairs")
        first_period, table = acc.total(start, end)
    pairs = None
    if kept:
        with timings.stage("assemble_pairs", backend):
            pairs = _concat_pairs(kept, first_period, table.n_periods, backend)
        table = table.to_backend(backend)  # the pairs' passes index it on their device
    return Loaded(table, first_period, pairs, {"missing_period": acc.missing_period}, market)


def pair_source(cfg: AppConfig, periodicity: str, device: Backend | None = None) -> PairSource:
    """The pair files and their options (the device reader's reads sized by `device`'s memory)."""
    roles = ("group", "prev", "recent", "y", "price_prev", "price_recent")
    return PairSource(
        path=cfg.data.path,
        format=option_name(cfg.data.format),
        columns={role: getattr(cfg.data.columns, role) for role in roles},
        periodicity=periodicity,
        integer_periods=option_name(cfg.data.integer_periods),
        start=cfg.data.start,
        batch_rows=int(cfg.data.batch_rows),
        memory_limit=cfg.data.memory_limit,
        device_read_bytes=None if device is None else device_read_budget(device, cfg.memory.maximum_pool_size),
    )


def _dask_pairs(
    cfg: AppConfig,
    source: PairSource,
    start: int | None,
    end: int | None,
    backend: Backend,
    strict: bool,
    method: MethodOptions,
    total_rows: int | None,
    timings: Timings,
    resources: contextlib.ExitStack,
) -> Loaded:
    """The cell table of a parquet dataset computed on a Dask cluster (see gpu_hpi/dask/tables.py); the
    cluster stays up (in `resources`) for the accuracy passes."""
    from ..dask.cluster import cluster_client
    from ..dask.passes import DaskPairs
    from ..dask.tables import dask_cell_table, partitions

    if (method.needs_pairs and method.name != "robust") or option_name(cfg.solver.name) != "normal":
        raise ConfigError(
            "with a Dask cluster the pairs stay on the workers: |e| Case-Shiller and lsqr/lsmr run with cluster=none"
        )
    worker_backend = "gpu" if option_name(cfg.cluster.kind) == "cuda" else "cpu"
    parts = partitions(source)  # before the cluster starts: a bad input fails fast and quietly
    client = resources.enter_context(cluster_client(cfg.cluster, cfg.memory))
    with progress_bar(bool(cfg.progress), total_rows) as advance, timings.stage("dask_table", backend):
        first, table, missing, kept_rows = dask_cell_table(
            client, source, parts, start, end, worker_backend, strict, advance
        )
    workers = len(client.scheduler_info().get("workers", {}))
    kept = DaskPairs(client, source, parts, kept_rows, first, worker_backend, backend.xp)
    return Loaded(
        table.to_backend(backend), first, None, {"missing_period": missing}, extra={"dask_workers": workers}, kept=kept
    )


def _parallel_map(fn: Callable[[Any], Any], items: Iterator[Any], workers: int) -> Iterator[Any]:
    """fn over items on `workers` threads, results in order, at most workers + 1 in flight (bounded
    memory); numpy and pyarrow release the GIL in the heavy parts."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[Any]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _synthetic_batches(market: SyntheticMarket, start: int, prices: bool) -> Iterator[PairBatch]:
    for k, (group, prev, recent, y) in enumerate(market.pairs()):
        p0, p1 = market.prices(y, k) if prices else (None, None)
        yield PairBatch(prev.astype(np.int32) + start, recent.astype(np.int32) + start, y, group, 0, p0, p1)


def _concat_pairs(batches: list[PairBatch], start: int, n_periods: int, backend: Backend) -> Pairs:
    xp = array_namespace(batches[0].y)
    groups = [b.group for b in batches]
    group: Any
    if groups[0] is None:
        group = None
    elif all(isinstance(g, GroupCodes) for g in groups):  # the device reader's: codes into one set of labels
        kinds = {g.labels.dtype for g in groups}  # int64 and uint64 past 2^63 merge as Python ints, not floats
        labels = np.unique(np.concatenate([g.labels.astype(object) if len(kinds) > 1 else g.labels for g in groups]))
        remaps = [xp.asarray(np.searchsorted(labels, g.labels).astype(np.int32)) for g in groups]
        group = GroupCodes(xp.concatenate([remap[g.codes] for remap, g in zip(remaps, groups, strict=True)]), labels)
    elif any(isinstance(g, GroupCodes) for g in groups):  # mixed with ids read on the host: the ids
        ids = [g.labels[to_host(g.codes)] if isinstance(g, GroupCodes) else g for g in groups]
        host = [g if isinstance(g, pd.Series) else to_host(g) for g in ids]
        group = pd.concat([pd.Series(g) for g in host], ignore_index=True)
    elif all(isinstance(g, (np.ndarray, xp.ndarray)) for g in groups):
        group = xp.concatenate([xp.asarray(g) for g in groups])
    else:  # some batches had missing ids (pandas): all on the host, then factorised together
        host = [g if isinstance(g, pd.Series) else to_host(g) for g in groups]
        group = pd.concat([pd.Series(g) for g in host], ignore_index=True)
    periods = [b.periods_from(start) for b in batches]
    return prepare_pairs(
        xp.concatenate([prev for prev, _ in periods]),
        xp.concatenate([recent for _, recent in periods]),
        xp.concatenate([b.y for b in batches]),
        group,
        n_periods=n_periods,
        backend=backend,
        price_prev=None if batches[0].price_prev is None else xp.concatenate([b.price_prev for b in batches]),
        price_recent=None if batches[0].price_recent is None else xp.concatenate([b.price_recent for b in batches]),
    )
