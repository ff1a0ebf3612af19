"""The loaders of `python -m gpu_hpi`, one per data.kind: pairs (streamed, or partitioned on Dask),
the synthetic market, sale records and stored cell tables, each into a cell table (and the pairs
where a method needs them)."""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..backend.core import Backend, array_namespace, to_host, usable_cores
from ..backend.memory import device_read_budget
from ..config import AppConfig, FileDataConfig, SyntheticDataConfig, option_name
from ..data.calendar import PER_YEAR, Calendar, parse_period
from ..data.cells import CellTable, TableAccumulator
from ..data.pairing import PairingRules, check_sales, make_pairs
from ..data.pairs import GroupCodes, Pairs, add_counts, prepare_pairs
from ..errors import ConfigError, DataError
from ..estimation.methods import MethodOptions
from ..io import device
from ..io.device_sales import pair_sales
from ..io.pairs import PairBatch, PairSource, ready
from ..io.sales import SaleSource
from ..io.sql_pairs import sql_batch, sql_cell_table
from ..io.sql_sales import sql_sales
from ..io.store import combine_tables, load_cells
from ..synthetic import SyntheticMarket
from .stages import Timings, progress_bar


def _window(data: FileDataConfig, periodicity: str) -> tuple[int | None, int | None]:
    start = None if data.start is None else parse_period(data.start, periodicity)
    end = None if data.end is None else parse_period(data.end, periodicity)
    if start is not None and end is not None and end < start:
        raise ConfigError(f"data.end={data.end} is before data.start={data.start}")
    return start, end


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


@dataclass(frozen=True)
class Loaded:
    """What the input gave: the cell table (periods from the absolute period first_period), the
    pairs when kept (else None), drop counts of the reading stage, the synthetic market (if
    any) and extra summary entries."""

    table: CellTable
    first_period: int
    pairs: Pairs | None
    dropped: dict[str, int]
    market: SyntheticMarket | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # accuracy without the pairs in this process (Dask): (table, refit, base, folds, pooled) -> Accuracy
    cross_validate: Callable[..., Any] | None = None
    # the robust fit's passes over pairs kept elsewhere (Dask): (table, identification, pooled) -> passes
    pair_passes: Callable[..., Any] | None = None


def stream_pairs(
    cfg: AppConfig,
    periodicity: str,
    backend: Backend,
    method: MethodOptions,
    strict: bool,
    keep_pairs: bool,
    timings: Timings,
    resources: contextlib.ExitStack,
) -> Loaded:
    """Synthetic or file pairs, batch by batch into cell tables (bounded memory unless kept)."""
    market = None
    one_batch = False  # DuckDB read every pair at once (a table then uses every core)
    if isinstance(cfg.data, SyntheticDataConfig):
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
        start, end = _window(cfg.data, periodicity)
        source = pair_source(cfg, periodicity, backend)
        total_rows = source.count_rows()
        if _uses_cluster(cfg):
            return _dask_pairs(cfg, source, start, end, backend, strict, method, total_rows, timings, resources)
        jobs = source.batch_jobs(gpu=backend.is_gpu, arrays=keep_pairs)  # the table alone: no CuPy
        if not backend.is_gpu:  # on the CPU DuckDB reads parquet (io/sql_pairs.py)
            with timings.stage("read_and_table"):
                if not keep_pairs:  # the cell table alone: one query
                    reduced = sql_cell_table(source, start, end, strict, progress=bool(cfg.progress))
                    if reduced is not None:
                        return Loaded(reduced.table, reduced.first, None, {"missing_period": reduced.missing_period})
                else:  # the pairs themselves, as one batch (its table then uses every core)
                    batch = sql_batch(source, progress=bool(cfg.progress))
                    if batch is not None:
                        jobs, one_batch = iter([functools.partial(ready, batch)]), True

    acc = TableAccumulator()
    kept: list[PairBatch] = []  # iterative solvers, the robust method and accuracy need the pairs
    # batches in parallel, one thread each: on the CPU all of the work; on the GPU (pyarrow
    # decoding on the host) the next batches' decoding overlaps this one's copy and table
    workers = usable_cores()
    if one_batch or (backend.is_gpu and (isinstance(cfg.data, SyntheticDataConfig) or source.reads_on_device(True))):
        workers = 1  # one batch, or device-resident batches: nothing on the host to overlap

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


def pair_source(cfg: AppConfig, periodicity: str, backend: Backend) -> PairSource:
    """The pair files and their options (device reads sized by the backend's device, if a GPU)."""
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
        device_read_bytes=(device_read_budget(backend, cfg.memory.maximum_pool_size) if backend.is_gpu else None),
    )


def sale_source(cfg: AppConfig, periodicity: str) -> SaleSource:
    """The sale-record files, their columns (one property column or a composite key) and options."""
    d = cfg.data
    prop = d.columns.property
    return SaleSource(
        path=d.path,
        format=option_name(d.format),
        property=[prop] if isinstance(prop, str) else [str(p) for p in prop],
        date=d.columns.date,
        price=d.columns.price,
        group=d.columns.group,
        periodicity=periodicity,
        integer_periods=option_name(d.integer_periods),
        start=d.start,
        batch_rows=int(d.batch_rows),
        memory_limit=d.memory_limit,
    )


def _uses_cluster(cfg: AppConfig) -> bool:
    return option_name(cfg.cluster.kind) != "none" or bool(cfg.cluster.address)


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
    from ..dask.passes import DaskPasses, dask_accuracy, partition_pairs
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

    def cross_validate(tab: CellTable, refit: Any, base: int, folds: int, pooled: bool) -> Any:
        return dask_accuracy(
            client, source, parts, kept_rows, first, tab.to_host(), refit, base, folds, worker_backend, pooled
        )

    def robust_passes(tab: CellTable, ident: Any, pooled: bool) -> Any:
        host = tab.to_host()
        futures = [client.submit(partition_pairs, source, p, first, host, worker_backend, pooled) for p in parts]
        return DaskPasses(client, futures, host, ident.identified, method.huber_c, worker_backend, backend.xp)

    return Loaded(
        table.to_backend(backend),
        first,
        None,
        {"missing_period": missing},
        extra={"dask_workers": workers},
        cross_validate=cross_validate,
        pair_passes=robust_passes,
    )


def load_transactions(
    cfg: AppConfig, periodicity: str, backend: Backend, strict: bool, keep_pairs: bool, prices: bool
) -> Loaded:
    """Sale records -> pairs -> cell table: on the CPU sorted by DuckDB and paired batch by batch
    (parquet: sql_sales.py), on the GPU read and paired by libcudf (io/device_sales.py), else read
    whole into arrays and paired by make_pairs."""
    d = cfg.data
    source = sale_source(cfg, periodicity)
    start, end = _window(cfg.data, periodicity)
    rules = PairingRules(
        pairing=option_name(d.pairing),
        min_holding=d.min_holding,
        max_holding=d.max_holding,
        max_annual_return=d.max_annual_return,
        max_robust_z=d.max_robust_z,
        periods_per_year=PER_YEAR[periodicity],
    )
    if not backend.is_gpu:
        paired = sql_sales(source, rules, start, end, keep_pairs, strict, prices, progress=bool(cfg.progress))
        if paired is not None:
            extra = {"n_sales_read": paired.n_sales, "pairing": rules.pairing, "n_pairs_made": paired.n_pairs}
            return Loaded(paired.table, paired.first, paired.pairs, paired.dropped, extra=extra)
    if source.reads_on_device(backend.is_gpu):  # read and paired by libcudf: no kernel to compile
        read = source.read_device()
        check_sales(read.n_sales, read.n_usable)
        ops = device.Ops(device.library())
        extremes = ops.minmax(read.period) or (0, 0)
        first = start if start is not None else extremes[0]
        last = end if end is not None else extremes[1]
        made = pair_sales(ops, read, rules, first, max(last - first + 1, 2))
        n_missing_date, read_dropped, n_sales = read.n_missing_date, read.dropped, read.n_sales
    else:
        raw = source.read()
        check_sales(raw.n_sales, int(raw.period.size))
        first = start if start is not None else int(raw.period.min())
        last = end if end is not None else int(raw.period.max())
        made = make_pairs(raw.to_sales(backend, first, max(last - first + 1, 2)), rules, backend)
        n_missing_date, read_dropped, n_sales = raw.n_missing_date, raw.dropped, raw.n_sales
    pairs = made.as_pairs()
    # the prices' sums only where used (as sql_sales): without them libcudf builds the table on a GPU
    priced = pairs if prices else replace(pairs, price_prev=None, price_recent=None)
    table = device.build_table(priced, backend, strict=strict)
    dropped = add_counts({"sale_missing_date": n_missing_date, **read_dropped}, made.dropped)
    extra = {"n_sales_read": n_sales, "pairing": rules.pairing, "n_pairs_made": made.n_pairs}
    # the table on the pairs' device where they are kept (their passes index it), else on the host
    return Loaded(table.to_backend(backend) if keep_pairs else table.to_host(), first, pairs, dropped, extra=extra)


def check_table_only(cfg: AppConfig, method: MethodOptions, solver: str, source: str) -> None:
    """With stored cell tables there are no pairs: refuse what needs them, before reading."""
    if method.needs_pairs:
        what = "method=robust" if method.name == "robust" else "method.stage2=absolute (the |e| stage 2)"
        raise ConfigError(f"{what} needs the pairs themselves; with {source} only cell tables are available")
    if solver != "normal":
        raise ConfigError(f"solver={solver} needs the pairs; with {source} use solver=normal")
    if cfg.diagnostics.accuracy_folds:
        raise ConfigError(f"diagnostics.accuracy_folds needs the pairs; with {source} set it to 0")


def stored_cells(files: list[str], periodicity: str, backend: Backend) -> Loaded:
    table, calendar = combine_tables([load_cells(f) for f in files])
    if calendar.periodicity != periodicity:
        raise DataError(f"the cell tables are by {calendar.periodicity}; set index.periodicity={calendar.periodicity}")
    return Loaded(table.to_backend(backend), calendar.start, None, {}, extra={"cell_tables": files})


def add_stored_cells(loaded: Loaded, files: list[str], periodicity: str, backend: Backend) -> Loaded:
    """The new pairs' table plus the stored tables of earlier pairs (calendars aligned)."""
    new = (loaded.table.to_host(), Calendar(periodicity, loaded.first_period, loaded.table.n_periods))
    stored = stored_cells(files, periodicity, backend)
    old = (stored.table.to_host(), Calendar(periodicity, stored.first_period, stored.table.n_periods))
    table, calendar = combine_tables([old, new])
    extra = {**loaded.extra, "added_cell_tables": files, "n_pairs_added_from_cells": old[0].n_pairs}
    return Loaded(table.to_backend(backend), calendar.start, None, loaded.dropped, loaded.market, extra)


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
