"""Orchestration of `python -m gpu_hpi`: read (streaming) -> cell table -> solve -> outputs.

Numbers happen in the engine modules; this module only wires them to the config and the files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .backend import Backend, array_namespace, configure_memory, peak_device_bytes, resolve_backend
from .calendar import Calendar, parse_period
from .cells import CellTable, build_cell_table, merge_tables
from .errors import ConfigError, DataError
from .estimate import fit_index
from .io import PairBatch, PairSource
from .pairs import Pairs, add_counts, check_strict, prepare_pairs
from .result import IndexResult
from .synthetic import SyntheticMarket

log = logging.getLogger("gpu_hpi")
OUTPUT_FILES = ("index.csv", "index.parquet", "summary.json", "index.png")


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


class TableAccumulator:
    """Sums per-batch cell tables whose periods start at different absolute offsets."""

    FOLD_EVERY = 16

    def __init__(self) -> None:
        self.parts: list[tuple[int, CellTable]] = []
        self.missing_period = 0

    def add(self, offset: int, table: CellTable) -> None:
        self.parts.append((offset, table))
        if len(self.parts) >= self.FOLD_EVERY:
            self.parts = [self.total()]

    def total(self, start: int | None = None, end: int | None = None) -> tuple[int, CellTable]:
        """(absolute start, table) of everything added, over [start, end] where given."""
        lo = min(off for off, _ in self.parts) if start is None else start
        hi = max(off + tb.n_periods - 1 for off, tb in self.parts) if end is None else end
        return lo, merge_tables([tb.shift(off - lo, hi - lo + 1) for off, tb in self.parts])


def _window(cfg: Any, periodicity: str) -> tuple[int | None, int | None]:
    start = None if cfg.data.get("start") is None else parse_period(cfg.data.start, periodicity)
    end = None if cfg.data.get("end") is None else parse_period(cfg.data.end, periodicity)
    return start, end


def _batch_table(
    batch: PairBatch, start: int | None, end: int | None, backend: Backend, strict: bool
) -> tuple[int, CellTable, Pairs]:
    """The (non-empty) batch's cell table over its own period range, or the configured window."""
    lo = start if start is not None else int(min(batch.prev.min(), batch.recent.min()))
    hi = end if end is not None else max(int(max(batch.prev.max(), batch.recent.max())), lo + 1)
    pairs = prepare_pairs(
        batch.prev - np.int32(lo),
        batch.recent - np.int32(lo),
        batch.y,
        batch.group,
        n_periods=max(hi - lo + 1, 2),
        backend=backend,
    )
    return lo, build_cell_table(pairs, backend, strict=strict), pairs


def _synthetic_batches(market: SyntheticMarket, start: int) -> Iterator[PairBatch]:
    for group, prev, recent, y in market.pairs():
        yield PairBatch(prev.astype(np.int32) + start, recent.astype(np.int32) + start, y, group, 0)


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


def run(cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Run the configured job and write its outputs into out_dir; returns the summary."""
    timings = Timings()
    periodicity = _name(cfg.index.periodicity)
    solver = _name(cfg.solver.name)
    with timings.stage("setup"):
        backend = resolve_backend(_name(cfg.backend.name))
        memory_note = configure_memory(
            backend,
            pool=cfg.memory.pool,
            initial_pool_size=cfg.memory.initial_pool_size,
            maximum_pool_size=cfg.memory.maximum_pool_size,
            managed_memory=cfg.memory.managed_memory,
        )
    log.info(
        "backend %s (%s): %s; %s",
        backend.name,
        backend.device,
        "requested" if _name(cfg.backend.name) != "auto" else "chosen by backend=auto",
        memory_note,
    )

    market = None
    strict = bool(cfg.data.get("strict", False))
    if cfg.data.kind == "synthetic":
        d = cfg.data
        market = SyntheticMarket.create(d.n_pairs, d.n_periods, d.n_groups, d.seed, d.noise_sd, d.mean_holding)
        first = parse_period(d.start, "month")
        if periodicity != "month":
            raise ConfigError("the synthetic market is monthly; use index.periodicity=month")
        start: int | None = first
        end: int | None = first + d.n_periods - 1
        batches: Iterator[PairBatch] = _synthetic_batches(market, first)
        total_rows: int | None = d.n_pairs
    else:
        start, end = _window(cfg, periodicity)
        columns = {role: cfg.data.columns.get(role) for role in ("group", "prev", "recent", "y")}
        source = PairSource(
            path=cfg.data.path,
            format=_name(cfg.data.format),
            columns=columns,
            periodicity=periodicity,
            integer_periods=_name(cfg.data.integer_periods),
            start=cfg.data.start,
            batch_rows=int(cfg.data.batch_rows),
        )
        total_rows = source.count_rows()
        batches = source.batches(gpu=backend.is_gpu)

    acc = TableAccumulator()
    kept: list[PairBatch] = []  # the iterative solvers need the pairs themselves
    with _progress(bool(cfg.progress), total_rows) as advance, timings.stage("read_and_table", backend):
        for batch in batches:
            acc.missing_period += batch.missing_period
            if advance is not None:
                advance(batch.n_rows + batch.missing_period)
            if batch.n_rows == 0:  # e.g. an empty part file, or a batch of null periods only
                continue
            offset, table, _ = _batch_table(batch, start, end, backend, strict)
            acc.add(offset, table)
            if solver != "normal":
                kept.append(batch)
    if not acc.parts:
        raise DataError("the input holds no pairs")
    first_period, table = acc.total(start, end)
    calendar = Calendar(periodicity, first_period, table.n_periods)

    pairs = None
    if kept:
        with timings.stage("assemble_pairs", backend):
            pairs = _concat_pairs(kept, first_period, table.n_periods, backend)
    base = 0 if cfg.index.base_period is None else calendar.position(cfg.index.base_period)
    with timings.stage("solve", backend):
        result = fit_index(
            table,
            pairs=pairs,
            backend=backend,
            solver=solver,
            base_period=base,
            min_pairs=cfg.index.min_pairs,
            groups=cfg.index.groups,
            pooled=cfg.index.pooled,
            period_labels=calendar.labels(),
            tol=cfg.solver.tol,
            iter_lim=cfg.solver.iter_lim,
        )

    dropped = add_counts({"missing_period": acc.missing_period}, table.dropped)
    if strict:
        check_strict(dropped)
    summary = _summary(cfg, result, table, dropped, backend, calendar, solver, market)
    with timings.stage("write"):
        write_outputs(result, out_dir, cfg.output, summary, timings)
    return summary


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
    else:
        group = pd.concat([pd.Series(g) for g in groups], ignore_index=True)
    return prepare_pairs(
        xp.concatenate([b.prev for b in batches]) - np.int32(start),
        xp.concatenate([b.recent for b in batches]) - np.int32(start),
        xp.concatenate([b.y for b in batches]),
        group,
        n_periods=n_periods,
        backend=backend,
    )


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
        "n_pairs_read": table.n_pairs + sum(dropped.values()),
        "n_pairs_used": int(result.n_used[per_group].sum()),
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
    if market is not None:
        rows = [int(np.nonzero(result.groups == g)[0][0]) for g in range(market.n_groups) if (result.groups == g).any()]
        true = market.true_log_index[[int(result.groups[r]) for r in rows]]
        true = true - true[:, result.base_period : result.base_period + 1]
        summary["max_abs_error_vs_true_log_index"] = float(np.nanmax(np.abs(result.log_index[rows] - true)))
    return summary


def write_outputs(result: IndexResult, out_dir: Path, output: Any, summary: dict[str, Any], timings: Timings) -> None:
    """Write every output to a temporary name first and rename them all at the end, so that a
    failure leaves no partial output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = result.to_frame(float(output.ci_level))
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
        if output.plot:
            result.plot(str(temp("index.png")), int(output.plot_groups), float(output.ci_level))
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
    for tmp, final in written:
        os.replace(tmp, final)
