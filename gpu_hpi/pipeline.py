"""Orchestration of `python -m gpu_hpi`: read (streaming) -> cell table -> solve -> outputs.

Numbers happen in the engine modules; this module only wires them to the config and the files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import json
import logging
import os
import resource
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .backend import (
    Backend,
    array_namespace,
    check_memory_sizes,
    configure_memory,
    device_read_budget,
    peak_device_bytes,
    resolve_backend,
)
from .charts import diagnostics_chart, regions_chart
from .data.calendar import PER_YEAR, Calendar, parse_period
from .data.cells import CellTable, TableAccumulator, build_cell_table
from .data.pairs import Pairs, add_counts, align_groups, check_strict, pooled_pairs, prepare_pairs
from .diagnostics import (
    Refit,
    accuracy,
    diagnostics_frame,
    forecast_errors,
    in_sample_errors,
    revision,
    smooth,
    vintage_indices,
    vintages_frame,
    volatility,
)
from .errors import ConfigError, DataError
from .estimation.api import fit_index
from .estimation.methods import MethodOptions
from .estimation.result import IndexResult
from .io import PairBatch, PairSource, SaleSource, cudf_module, ready, write_atomically
from .series import SEASONS, fill_gaps, seasonal_adjust
from .sql import sql_batch, sql_cell_table
from .sql_sales import sql_sales
from .store import cell_files, combine_tables, load_cells, save_cells
from .synthetic import SyntheticMarket
from .transactions import PairingRules, check_sales, make_pairs

log = logging.getLogger("gpu_hpi")
OUTPUT_FILES = (
    "index.csv",
    "index.parquet",
    "summary.json",
    "index.png",
    "diagnostics.csv",
    "accuracy.csv",
    "cells.parquet",
)


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str, backend: Backend | None = None) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if backend is not None:
            backend.synchronize()
        self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start


def _window(cfg: Any, periodicity: str) -> tuple[int | None, int | None]:
    start = None if cfg.data.get("start") is None else parse_period(cfg.data.start, periodicity)
    end = None if cfg.data.get("end") is None else parse_period(cfg.data.end, periodicity)
    if start is not None and end is not None and end < start:
        raise ConfigError(f"data.end={cfg.data.end} is before data.start={cfg.data.start}")
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


def _progress(enabled: bool, total: int | None) -> Any:
    """A rich progress bar of rows read on stderr, only when it is a terminal."""
    if not (enabled and sys.stderr.isatty()):
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("reading pairs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    @contextlib.contextmanager
    def bar() -> Iterator[Any]:
        with progress:
            task = progress.add_task("rows", total=total)
            yield lambda n: progress.advance(task, n)

    return bar()


def run(cfg: Any, out_dir: Path, startup_s: float | None = None) -> dict[str, Any]:
    """Run the configured job and write its outputs into out_dir; returns the summary.
    startup_s: the seconds the process took to get here (reported as the "startup" stage)."""
    with contextlib.ExitStack() as resources:  # e.g. a Dask cluster, kept until the diagnostics are done
        return _run(cfg, out_dir, resources, startup_s)


def _run(cfg: Any, out_dir: Path, resources: contextlib.ExitStack, startup_s: float | None) -> dict[str, Any]:
    timings = Timings()
    if startup_s is not None:
        timings.stages["startup"] = startup_s
    _check_options(cfg)
    periodicity = _name(cfg.index.periodicity)
    solver = _name(cfg.solver.name)
    options: dict[str, Any] = {f.name: cfg.method[f.name] for f in dataclasses.fields(MethodOptions)}
    method = MethodOptions(**{**options, "name": _name(cfg.method.name), "stage2": _name(cfg.method.stage2)})
    with timings.stage("setup"):
        backend = resolve_backend(_name(cfg.backend.name))
        memory_note = configure_memory(
            backend,
            pool=cfg.memory.pool,
            initial_pool_size=cfg.memory.initial_pool_size,
            maximum_pool_size=cfg.memory.maximum_pool_size,
            managed_memory=cfg.memory.managed_memory,
        )
        if backend.is_gpu and cfg.data.kind in ("pairs", "transactions"):
            cudf_module()  # its import (seconds) counted here, not in the reading
    if cfg.output.plot:
        # the chart's imports (~0.5 s) while the data are read: on the GPU the host is idle; on the
        # CPU DuckDB's query and numpy release the GIL
        threading.Thread(target=importlib.import_module, args=("matplotlib.figure",), daemon=True).start()
    how = "requested" if _name(cfg.backend.name) != "auto" else "chosen by backend=auto"
    # the memory note only where it applies (the GPU): no word about options a CPU run ignores
    log.info("backend %s (%s): %s%s", backend.name, backend.device, how, f"; {memory_note}" if backend.is_gpu else "")

    strict = bool(cfg.data.get("strict", False))
    keep_pairs = solver != "normal" or method.needs_pairs or cfg.diagnostics.accuracy_folds > 0
    if cfg.data.get("add_cells"):
        _check_table_only(cfg, method, solver, "data.add_cells")
    if cfg.data.kind == "transactions":
        with timings.stage("read_and_pair", backend):
            prices = method.name == "arithmetic" or bool(cfg.output.cells or cfg.data.get("add_cells"))
            loaded = _load_transactions(
                cfg, periodicity, backend, strict, keep_pairs or bool(cfg.data.save_pairs), prices
            )
        if cfg.data.save_pairs and loaded.pairs is not None:
            with timings.stage("save_pairs"):
                calendar = Calendar(periodicity, loaded.first_period, loaded.table.n_periods)
                save_pairs(loaded.pairs, calendar, cfg.data.save_pairs)
    elif cfg.data.kind == "cells":
        _check_table_only(cfg, method, solver, "data=cells")
        with timings.stage("read_cells"):
            loaded = _stored_cells(cell_files(cfg.data.path), periodicity, backend)
    else:
        loaded = _stream_pairs(cfg, periodicity, backend, method, strict, keep_pairs, timings, resources)
    if cfg.data.get("add_cells"):
        with timings.stage("add_cells"):
            loaded = _add_stored_cells(loaded, cell_files(cfg.data.add_cells), periodicity, backend)
    table, pairs, market = loaded.table, loaded.pairs, loaded.market
    if table.n_pairs == 0:
        raise DataError(
            f"none of the input's pairs is usable ({_drop_text(add_counts(loaded.dropped, table.dropped))})"
        )
    calendar = Calendar(periodicity, loaded.first_period, table.n_periods)
    if not keep_pairs:
        pairs = None
    base = 0 if cfg.index.base_period is None else calendar.position(cfg.index.base_period)
    # a table-only fit is a few MB of (G, T, T) solves: on the host in float64, whatever the backend
    on_host = solver == "normal" and not method.needs_pairs
    refit = Refit(method, cfg.index.min_pairs, bool(cfg.index.groups), bool(cfg.index.pooled))
    fit_options = dict(
        backend=resolve_backend("cpu") if on_host else backend,
        method=method,
        min_pairs=cfg.index.min_pairs,
        groups=cfg.index.groups,
        pooled=cfg.index.pooled,
    )
    with timings.stage("solve", backend):
        result = fit_index(
            table.to_host() if on_host else table,
            pairs=None if on_host else pairs,  # a table-only fit never reads them
            solver=solver,
            base_period=base,
            period_labels=calendar.labels(),
            tol=cfg.solver.tol,
            iter_lim=cfg.solver.iter_lim,
            operator=cfg.solver.operator.value,
            pair_passes=loaded.pair_passes,
            **fit_options,
        )
    with timings.stage("diagnostics", backend):
        diag = run_diagnostics(cfg.diagnostics, result, table, pairs, refit, backend, loaded.cross_validate)

    dropped = add_counts(loaded.dropped, table.dropped)
    if strict:
        check_strict(dropped)
    # pairs the estimator itself left out (Case-Shiller's stage-2 weight 0; not bad data, so not
    # under strict), as the regions' fit counts them
    fit_info = result.solver_info.get("groups") or result.solver_info.get("pooled") or {}
    if fit_info.get("zero_weight_pairs"):
        dropped = {**dropped, "zero_weight": int(fit_info["zero_weight_pairs"])}
    check_estimated(result, table.n_pairs, dropped)
    summary = _summary(cfg, result, table, dropped, backend, calendar, solver, market)
    summary.update(loaded.extra)
    summary["diagnostics"] = diag.summary
    # the stored table carries every drop count, the readers' included, for later runs to report
    cells = (replace(table, dropped=dropped), calendar) if cfg.output.cells or cfg.data.get("add_cells") else None
    columns = series_columns(cfg.index, result, calendar.periodicity, summary)
    write_outputs(result, out_dir, cfg.output, summary, timings, diag, cells, columns)
    return summary


def series_columns(index: Any, result: IndexResult, periodicity: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The output columns of index.fill (log_index / index with the inner gaps filled, filled) and
    index.seasonal_adjust (log_index_sa, index_sa), as (G, T) arrays; their counts in summary."""
    columns: dict[str, Any] = {}
    log_index = result.log_index
    if index.get("fill") is not None:
        log_index, filled = fill_gaps(log_index, _name(index.fill))
        columns.update(log_index=log_index, index=100.0 * np.exp(log_index), filled=filled)
        summary["filled_periods"] = int(filled.sum())
    if index.get("seasonal_adjust") is not None:
        adjusted_log, adjusted = seasonal_adjust(log_index, periodicity, result.base_period)
        columns.update(log_index_sa=adjusted_log, index_sa=100.0 * np.exp(adjusted_log))
        summary["seasonal_adjust"] = {
            "method": _name(index.seasonal_adjust),
            "adjusted": [str(g) for g in result.groups[adjusted]],
            "not_adjusted": [str(g) for g in result.groups[~adjusted & ~result.skipped]],
        }
    return columns


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


def _stream_pairs(
    cfg: Any,
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
    if cfg.data.kind == "synthetic":
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
        start, end = _window(cfg, periodicity)
        roles = ("group", "prev", "recent", "y", "price_prev", "price_recent")
        columns = {role: cfg.data.columns.get(role) for role in roles}
        source = PairSource(
            path=cfg.data.path,
            format=_name(cfg.data.format),
            columns=columns,
            periodicity=periodicity,
            integer_periods=_name(cfg.data.integer_periods),
            start=cfg.data.start,
            batch_rows=int(cfg.data.batch_rows),
            memory_limit=cfg.data.get("memory_limit"),
            device_read_bytes=device_read_budget(backend, cfg.memory.maximum_pool_size) if backend.is_gpu else None,
        )
        total_rows = source.count_rows()
        if _uses_cluster(cfg):
            return _dask_pairs(cfg, source, start, end, backend, strict, method, total_rows, timings, resources)
        jobs = source.batch_jobs(gpu=backend.is_gpu)
        if not backend.is_gpu:  # on the CPU DuckDB reads parquet (sql.py)
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
    workers = os.cpu_count() or 1
    if one_batch or (backend.is_gpu and (cfg.data.kind == "synthetic" or source.reads_on_device(True))):
        workers = 1  # one batch, or device-resident batches: nothing on the host to overlap

    def convert_and_reduce(job: Callable[[], PairBatch]) -> tuple[PairBatch, tuple[int, CellTable] | None]:
        batch = job()
        if batch.n_rows == 0:  # e.g. an empty part file, or a batch of null periods only
            return batch, None
        return batch, batch.cell_table(start, end, backend, strict, threads=1 if workers > 1 else None)

    with _progress(bool(cfg.progress), total_rows) as advance, timings.stage("read_and_table", backend):
        for batch, reduced in _parallel_map(convert_and_reduce, jobs, workers):
            acc.missing_period += batch.missing_period
            if advance is not None:
                advance(batch.n_rows + batch.missing_period)
            if reduced is not None:
                acc.add(*reduced)
                if keep_pairs:
                    kept.append(batch)
    if not acc.parts:
        raise DataError("the input holds no pairs")
    first_period, table = acc.total(start, end)
    pairs = None
    if kept:
        with timings.stage("assemble_pairs", backend):
            pairs = _concat_pairs(kept, first_period, table.n_periods, backend)
    return Loaded(table, first_period, pairs, {"missing_period": acc.missing_period}, market)


def _uses_cluster(cfg: Any) -> bool:
    return _name(cfg.cluster.kind) != "none" or bool(cfg.cluster.address)


def _dask_pairs(
    cfg: Any,
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
    """The cell table of a parquet dataset computed on a Dask cluster (see distributed.py); the
    cluster stays up (in `resources`) for the accuracy passes."""
    from .distributed import DaskPasses, cluster_client, dask_accuracy, dask_cell_table, partition_pairs, partitions

    if (method.needs_pairs and method.name != "robust") or _name(cfg.solver.name) != "normal":
        raise ConfigError(
            "with a Dask cluster the pairs stay on the workers: |e| Case-Shiller and lsqr/lsmr run with cluster=none"
        )
    worker_backend = "gpu" if _name(cfg.cluster.kind) == "cuda" else "cpu"
    parts = partitions(source)  # before the cluster starts: a bad input fails fast and quietly
    client = resources.enter_context(cluster_client(cfg.cluster, cfg.memory))
    with _progress(bool(cfg.progress), total_rows) as advance, timings.stage("dask_table", backend):
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
        _on_backend(table, backend),
        first,
        None,
        {"missing_period": missing},
        extra={"dask_workers": workers},
        cross_validate=cross_validate,
        pair_passes=robust_passes,
    )


def _load_transactions(
    cfg: Any, periodicity: str, backend: Backend, strict: bool, keep_pairs: bool, prices: bool
) -> Loaded:
    """Sale records -> pairs -> cell table: on the CPU paired by DuckDB (parquet: sql_sales.py),
    else read into arrays (pairing needs every sale of a property) and paired by make_pairs."""
    d = cfg.data
    prop = d.columns.property
    source = SaleSource(
        path=d.path,
        format=_name(d.format),
        property=[prop] if isinstance(prop, str) else [str(p) for p in prop],
        date=d.columns.date,
        price=d.columns.price,
        group=d.columns.get("group"),
        periodicity=periodicity,
        integer_periods=_name(d.integer_periods),
        start=d.start,
        batch_rows=int(d.batch_rows),
        memory_limit=d.get("memory_limit"),
    )
    start, end = _window(cfg, periodicity)
    rules = PairingRules(
        pairing=_name(d.pairing),
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
    raw = source.read()
    check_sales(raw.n_sales, int(raw.period.size))
    first = start if start is not None else int(raw.period.min())
    last = end if end is not None else int(raw.period.max())
    sales = raw.to_sales(backend, first, max(last - first + 1, 2))
    made = make_pairs(sales, rules, backend)
    pairs = made.as_pairs()
    table = build_cell_table(pairs, backend, strict=strict)
    dropped = add_counts({"sale_missing_date": raw.n_missing_date, **raw.dropped}, made.dropped)
    extra = {"n_sales_read": raw.n_sales, "pairing": rules.pairing, "n_pairs_made": made.n_pairs}
    return Loaded(table, first, pairs, dropped, extra=extra)


def _check_table_only(cfg: Any, method: MethodOptions, solver: str, source: str) -> None:
    """With stored cell tables there are no pairs: refuse what needs them, before reading."""
    if method.needs_pairs:
        what = "method=robust" if method.name == "robust" else "method.stage2=absolute (the |e| stage 2)"
        raise ConfigError(f"{what} needs the pairs themselves; with {source} only cell tables are available")
    if solver != "normal":
        raise ConfigError(f"solver={solver} needs the pairs; with {source} use solver=normal")
    if cfg.diagnostics.accuracy_folds:
        raise ConfigError(f"diagnostics.accuracy_folds needs the pairs; with {source} set it to 0")


def _stored_cells(files: list[str], periodicity: str, backend: Backend) -> Loaded:
    table, calendar = combine_tables([load_cells(f) for f in files])
    if calendar.periodicity != periodicity:
        raise DataError(f"the cell tables are by {calendar.periodicity}; set index.periodicity={calendar.periodicity}")
    return Loaded(_on_backend(table, backend), calendar.start, None, {}, extra={"cell_tables": files})


def _add_stored_cells(loaded: Loaded, files: list[str], periodicity: str, backend: Backend) -> Loaded:
    """The new pairs' table plus the stored tables of earlier pairs (calendars aligned)."""
    new = (loaded.table.to_host(), Calendar(periodicity, loaded.first_period, loaded.table.n_periods))
    stored = _stored_cells(files, periodicity, backend)
    old = (stored.table.to_host(), Calendar(periodicity, stored.first_period, stored.table.n_periods))
    table, calendar = combine_tables([old, new])
    extra = {**loaded.extra, "added_cell_tables": files, "n_pairs_added_from_cells": old[0].n_pairs}
    return Loaded(_on_backend(table, backend), calendar.start, None, loaded.dropped, loaded.market, extra)


def _on_backend(table: CellTable, backend: Backend) -> CellTable:
    if not backend.is_gpu:
        return table
    xp = backend.xp
    return replace(
        table,
        group=xp.asarray(table.group),
        prev=xp.asarray(table.prev),
        recent=xp.asarray(table.recent),
        count=xp.asarray(table.count),
        sums={k: xp.asarray(v) for k, v in table.sums.items()},
    )


def save_pairs(pairs: Pairs, calendar: Calendar, path: str) -> None:
    """Write the pairs as parquet in the seed's schema (group_id, PrevYearMonth, RecentYearMonth,
    LogPriceDiff) plus PrevPrice and RecentPrice; periods as their first day; atomic."""

    def host(a: Any) -> np.ndarray:
        return a if isinstance(a, np.ndarray) else a.get()

    firsts = calendar.first_days()
    group: Any = "ALL"
    if pairs.group is not None:  # a pair whose later sale has no group keeps a missing group
        codes = host(pairs.group)
        group = pd.Series(pairs.group_labels[np.maximum(codes, 0)], dtype=object).where(codes >= 0, None)
    frame = pd.DataFrame(
        {
            "group_id": group,
            "PrevYearMonth": firsts[host(pairs.prev)],
            "RecentYearMonth": firsts[host(pairs.recent)],
            "LogPriceDiff": host(pairs.y),
            "PrevPrice": host(pairs.price_prev),
            "RecentPrice": host(pairs.price_recent),
        }
    )
    write_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))


def _name(value: Any) -> str:
    return str(value.value if hasattr(value, "value") else value)


def _concat_pairs(batches: list[PairBatch], start: int, n_periods: int, backend: Backend) -> Pairs:
    xp = array_namespace(batches[0].y)
    groups = [b.group for b in batches]
    group: Any
    if groups[0] is None:
        group = None
    elif all(isinstance(g, (np.ndarray, xp.ndarray)) for g in groups):
        group = xp.concatenate([xp.asarray(g) for g in groups])
    else:  # some batches had missing ids (pandas): all on the host, then factorised together
        host = [g.get() if hasattr(g, "get") and not isinstance(g, pd.Series) else g for g in groups]
        group = pd.concat([pd.Series(g) for g in host], ignore_index=True)
    return prepare_pairs(
        xp.concatenate([b.prev for b in batches]) - np.int32(start),
        xp.concatenate([b.recent for b in batches]) - np.int32(start),
        xp.concatenate([b.y for b in batches]),
        group,
        n_periods=n_periods,
        backend=backend,
        price_prev=None if batches[0].price_prev is None else xp.concatenate([b.price_prev for b in batches]),
        price_recent=None if batches[0].price_recent is None else xp.concatenate([b.price_recent for b in batches]),
    )


@dataclass(frozen=True)
class DiagnosticsOutput:
    """frame: diagnostics.csv; accuracy: accuracy.csv (or None); smoothed: (G, T) index_smoothed
    column (or None); summary: the summary.json section."""

    frame: pd.DataFrame
    accuracy: pd.DataFrame | None
    smoothed: np.ndarray | None
    summary: dict[str, Any]
    vintages: pd.DataFrame | None = None  # vintages.parquet


def run_diagnostics(
    cfg: Any,
    result: IndexResult,
    table: CellTable,
    pairs: Pairs | None,
    refit: Refit,
    backend: Backend,
    cross_validate: Callable[..., Any] | None = None,
) -> DiagnosticsOutput:
    """Volatility, revision, accuracy and smoothing as configured. Revision and accuracy refit the
    index from cell tables (on the host), so they need a table-based method (not robust)."""
    method = refit.method
    vol = volatility(result, int(cfg.volatility_window))
    finite = np.isfinite(vol)
    summary: dict[str, Any] = {
        "volatility_window": int(cfg.volatility_window),
        "mean_volatility": {
            str(g): _num(np.mean(v[f])) if f.any() else None for g, v, f in zip(result.groups, vol, finite, strict=True)
        },
    }
    table_based = not method.needs_pairs
    rev = None
    stack = None  # the vintages' indices, for the revision, the forecast error and vintages.parquet
    wants_vintages = cfg.revision or cfg.get("forecast_error") or cfg.get("vintages")
    if wants_vintages and not table_based:  # the vintages are refits from cell tables
        unavailable = f"not available for method={method.name} (it needs the pairs, not a cell table)"
        for name, wanted in (("revision", cfg.revision), ("accuracy_forecast", cfg.get("forecast_error"))):
            if wanted:
                summary[name] = unavailable
        if cfg.get("vintages"):
            summary["vintages"] = unavailable
    elif wants_vintages:
        stack = vintage_indices(table, refit, result)
    if cfg.revision and stack is not None:
        rev = revision(table, refit, result, stack)
        summary["revision"] = {
            "vintages": len(rev.vintages),
            "mean": {str(g): _num(v) for g, v in zip(result.groups, rev.overall_mean, strict=True)},
            "median": {str(g): _num(v) for g, v in zip(result.groups, rev.overall_median, strict=True)},
        }
    errors = []
    if cfg.get("in_sample_error"):
        errors.append(in_sample_errors(table, refit, result))
    if cfg.get("forecast_error") and stack is not None:
        errors.append(forecast_errors(table, refit, result, stack))
    for frame in errors:
        kind = str(frame["kind"].iloc[0])
        summary[f"accuracy_{kind}"] = {
            "rmse": {g: _num(v) for g, v in zip(frame["group"], frame["rmse"], strict=True)},
            "mean_error": {g: _num(v) for g, v in zip(frame["group"], frame["mean_error"], strict=True)},
            "n_scored": int(frame["n_scored"].sum()),
        }
    accuracy_frame = None
    if cfg.accuracy_folds:
        if not table_based:
            summary["accuracy"] = f"not available for method={method.name} (it needs the pairs, not a cell table)"
        elif pairs is not None or cross_validate is not None:
            folds = int(cfg.accuracy_folds)
            pooled = not refit.groups or table.group_labels.tolist() == ["ALL"]
            scored = table.pooled() if pooled else table  # cross-validate the group indices, else the pooled
            if pairs is not None:
                mine = pooled_pairs(pairs) if pooled else align_groups(pairs, table.group_labels)
                acc = accuracy(mine, scored, refit, result, backend, folds)
            else:
                assert cross_validate is not None
                acc = cross_validate(scored, refit, result.base_period, folds, pooled)
            accuracy_frame = acc.to_frame()
            summary["accuracy"] = {"folds": acc.folds, **acc.overall}
    if errors:
        accuracy_frame = pd.concat([f for f in (accuracy_frame, *errors) if f is not None], ignore_index=True)
    smoothed = smooth(result, int(cfg.smooth_window)) if cfg.smooth_window else None
    vintage_frame = vintages_frame(result, stack) if cfg.get("vintages") and stack is not None else None
    return DiagnosticsOutput(diagnostics_frame(result, vol, rev), accuracy_frame, smoothed, summary, vintage_frame)


def check_estimated(result: IndexResult, n_pairs: int, dropped: dict[str, int]) -> None:
    """DataError unless some index moved off its base period: an index of NaN everywhere (every
    region skipped or unidentified, e.g. all pairs within one period) is no result."""
    others = np.ones(result.log_index.shape[1], dtype=bool)
    others[result.base_period] = False
    if np.isfinite(result.log_index[:, others]).any():
        return
    why = f"{n_pairs:,} pairs in the cell table"
    if result.skipped.all():
        why += ", every region below index.min_pairs"
    raise DataError(f"no index could be estimated: {why}, no period linked to the base period ({_drop_text(dropped)})")


def _drop_text(dropped: dict[str, int]) -> str:
    return "dropped: " + ", ".join(f"{k} {v:,}" for k, v in dropped.items()) if dropped else "nothing dropped"


def _check_options(cfg: Any) -> None:
    """Refuse impossible option values before any data is read."""
    if not 0 < cfg.output.ci_level < 1:
        raise ConfigError(f"output.ci_level must be between 0 and 1, got {cfg.output.ci_level}")
    if cfg.data.get("batch_rows") is not None and cfg.data.batch_rows < 1:
        raise ConfigError(f"data.batch_rows must be positive, got {cfg.data.batch_rows}")
    if cfg.method.huber_c <= 0 or cfg.method.max_iter < 1 or cfg.method.tol <= 0:
        raise ConfigError("method.huber_c and method.tol must be positive and method.max_iter at least 1")
    if cfg.index.base_period is not None:
        parse_period(cfg.index.base_period, _name(cfg.index.periodicity))  # its form; the window comes later
    if cfg.index.min_pairs is not None and cfg.index.min_pairs < 1:
        raise ConfigError(f"index.min_pairs must be at least 1 (or null), got {cfg.index.min_pairs}")
    if cfg.output.plot_groups < 0:
        raise ConfigError(f"output.plot_groups must be 0 or more, got {cfg.output.plot_groups}")
    check_memory_sizes(cfg.memory.initial_pool_size, cfg.memory.maximum_pool_size)
    periodicity = _name(cfg.index.periodicity)
    if cfg.index.get("seasonal_adjust") is not None and periodicity not in SEASONS:
        raise ConfigError(
            f"index.seasonal_adjust needs monthly or quarterly periods, got index.periodicity={periodicity}"
        )
    _check_diagnostics(cfg.diagnostics)


def _check_diagnostics(cfg: Any) -> None:
    if cfg.volatility_window < 2:
        raise ConfigError(f"diagnostics.volatility_window must be at least 2, got {cfg.volatility_window}")
    if cfg.smooth_window and (cfg.smooth_window < 3 or cfg.smooth_window % 2 == 0):
        raise ConfigError(f"diagnostics.smooth_window must be 0 (off) or an odd number >= 3, got {cfg.smooth_window}")
    if cfg.accuracy_folds and not 2 <= cfg.accuracy_folds <= 100:
        raise ConfigError(f"diagnostics.accuracy_folds must be 0 (off) or 2..100, got {cfg.accuracy_folds}")


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _summary(
    cfg: Any,
    result: IndexResult,
    table: CellTable,
    dropped: dict[str, int],
    backend: Backend,
    calendar: Calendar,
    solver: str,
    market: SyntheticMarket | None,
) -> dict[str, Any]:
    is_pooled = result.groups == "ALL"
    per_group = ~is_pooled if (~is_pooled).any() else is_pooled
    summary: dict[str, Any] = {
        # sale_* reasons count sales (before pairing), the others pairs
        # sale_* count sales; zero_weight pairs are in the table (the estimator, not the reader, left them out)
        "n_pairs_read": table.n_pairs
        + sum(v for k, v in dropped.items() if not k.startswith("sale_") and k != "zero_weight"),
        # by the regional indices (by the pooled one where there are no regions); the pooled one's apart
        "n_pairs_used": int(result.n_used[per_group].sum()),
        "n_pairs_used_pooled": int(result.n_used[is_pooled].sum()) if is_pooled.any() else None,
        "dropped": dropped,
        "method": _name(cfg.method.name),
        "solver": solver,
        "solver_info": result.solver_info,
        "backend": backend.name,
        "device": backend.device,
        "periodicity": calendar.periodicity,
        "first_period": str(calendar.labels()[0]),
        "last_period": str(calendar.labels()[-1]),
        "base_period": str(result.periods[result.base_period]),
        "n_periods": calendar.n_periods,
        "n_groups": int((~is_pooled).sum()),
        "skipped_groups": [str(g) for g in result.groups[result.skipped]],
        "n_unidentified": len(result.unidentified),
    }
    if market is not None and (result.groups != "ALL").any():
        rows = [int(np.nonzero(result.groups == g)[0][0]) for g in range(market.n_groups) if (result.groups == g).any()]
        true = market.true_log_index[[int(result.groups[r]) for r in rows]]
        true = true - true[:, result.base_period : result.base_period + 1]
        error = np.abs(result.log_index[rows] - true)
        if np.isfinite(error).any():  # regions all skipped: no error to report
            summary["max_abs_error_vs_true_log_index"] = float(np.nanmax(error))
    return summary


def write_outputs(
    result: IndexResult,
    out_dir: Path,
    output: Any,
    summary: dict[str, Any],
    timings: Timings,
    diagnostics: DiagnosticsOutput | None = None,
    cells: tuple[CellTable, Calendar] | None = None,
    columns: dict[str, Any] | None = None,
) -> None:
    """Write every output to a temporary name first and rename them all at the end, so that a
    failure leaves no partial output. The "write" stage in summary.json counts everything up to
    summary.json itself."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = result.to_frame(float(output.ci_level))
    for name, values in (columns or {}).items():  # index.fill, index.seasonal_adjust (series.py)
        frame[name] = np.asarray(values).ravel()
    if diagnostics is not None and diagnostics.smoothed is not None:
        frame["index_smoothed"] = diagnostics.smoothed.ravel()
    written: list[tuple[Path, Path]] = []

    def temp(name: str) -> Path:
        final = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        written.append((tmp, final))
        return tmp

    try:
        if output.csv:
            frame.to_csv(temp("index.csv"), index=False, float_format="%.10g")
        if output.parquet:
            frame.to_parquet(temp("index.parquet"), index=False)
        if diagnostics is not None:
            diagnostics.frame.to_csv(temp("diagnostics.csv"), index=False, float_format="%.10g")
            if diagnostics.accuracy is not None:
                diagnostics.accuracy.to_csv(temp("accuracy.csv"), index=False, float_format="%.10g")
            if diagnostics.vintages is not None:
                diagnostics.vintages.to_parquet(temp("vintages.parquet"), index=False)
        if cells is not None:
            save_cells(*cells, temp("cells.parquet"))
        if output.plot:
            result.plot(str(temp("index.png")), int(output.plot_groups), float(output.ci_level))
        if output.get("plot_regions") and (result.groups != "ALL").any():
            regions_chart(result, str(temp("regions.png")), float(output.ci_level))
        if output.get("plot_diagnostics") and diagnostics is not None:
            diagnostics_chart(diagnostics.frame, result.periods, str(temp("diagnostics.png")))
        timings.stages["write"] = time.perf_counter() - started
        summary["timings_s"] = {k: round(v, 4) for k, v in timings.stages.items()}
        summary["peak_host_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        backend = resolve_backend(summary["backend"])
        summary["peak_device_bytes"] = peak_device_bytes(backend)
        summary["outputs"] = [final.name for _, final in written] + ["summary.json"]
        temp("summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    # the renames as one step: a SIGINT / SIGTERM waits until they are done, so that the outputs
    # are all of one run or none; summary.json, renamed last, marks a complete set
    signals = {signal.SIGINT, signal.SIGTERM}
    blocked = threading.current_thread() is threading.main_thread()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals) if blocked else None
    try:
        for tmp, final in written:
            os.replace(tmp, final)
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
