"""Orchestration of `python -m gpu_hpi`: read (streaming) -> cell table -> solve -> outputs.

Numbers happen in the engine modules, reading in the loaders, files in the report; this module only
wires them to the configuration, stage by stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import re
import threading
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..analysis.refit import Refit
from ..analysis.series import SEASONS
from ..backend import warmup
from ..backend.core import resolve_backend
from ..backend.memory import check_memory_sizes, configure_memory
from ..config import (
    AppConfig,
    CellsDataConfig,
    DiagnosticsConfig,
    FileDataConfig,
    MethodTuning,
    TransactionsDataConfig,
    option_name,
)
from ..data.calendar import Calendar, parse_period
from ..data.rules import add_counts, check_strict
from ..errors import ConfigError, DataError, IdentificationWarning
from ..estimation.api import UNIDENTIFIED, fit_index
from ..estimation.iterative import check_limits
from ..estimation.methods import MethodOptions
from ..estimation.result import IndexResult
from ..io import device
from ..io.files import input_files
from ..io.frames import frame_fingerprint
from ..io.store import cell_files, derived_inputs
from .loaded import input_window
from .loaders import SharedReads, add_stored_cells, check_table_only, load, on_cluster, read_key, read_plan
from .outputs import write_outputs
from .preflight import UNIDENTIFIED_CSV, check_input, check_outputs, input_paths
from .record import fingerprint, market_fingerprint, run_record
from .report import check_estimated, drop_text, run_diagnostics, run_summary, series_columns
from .stages import Timings

log = logging.getLogger("gpu_hpi")


def run(
    cfg: DictConfig | AppConfig,
    out_dir: Path,
    startup_s: float | None = None,
    command_line: list[str] | None = None,
    reads: SharedReads | None = None,
) -> dict[str, Any]:
    """Run the configured job (Hydra's composed configuration, or the schema's objects) and write
    its outputs into out_dir; returns the summary. startup_s: the seconds the process took to get
    here (reported as the "startup" stage); command_line: the overrides it was composed from (the
    run record's); reads: the reads an earlier job of this process may share (a sweep's)."""
    return run_job(cfg, out_dir, startup_s, command_line, reads=reads)[1]


def run_job(
    cfg: DictConfig | AppConfig,
    out_dir: Path,
    startup_s: float | None = None,
    command_line: list[str] | None = None,
    frame: Any = None,
    reads: SharedReads | None = None,
) -> tuple[IndexResult, dict[str, Any]]:
    """run, returning the IndexResult too; frame: the pairs or sale records in a frame in memory
    (anything that speaks Arrow; a cudf frame stays on the device where libcudf reads for the
    backend), read in place of data.path's files by the same rules (app/library.py)."""
    app = cfg if isinstance(cfg, AppConfig) else OmegaConf.to_object(cfg)
    if not isinstance(app, AppConfig):
        raise ConfigError(f"not gpu_hpi's configuration: {type(app).__name__}")
    if frame is not None and app.data.kind not in ("pairs", "transactions"):
        raise ConfigError(f"a frame in memory holds pairs or sale records, not data={app.data.kind}")
    with contextlib.ExitStack() as resources:  # e.g. a Dask cluster, kept until the diagnostics are done
        return _run(app, out_dir, resources, startup_s, command_line, frame, reads)


def _run(
    cfg: AppConfig,
    out_dir: Path,
    resources: contextlib.ExitStack,
    startup_s: float | None,
    command_line: list[str] | None,
    frame: Any,
    reads: SharedReads | None,
) -> tuple[IndexResult, dict[str, Any]]:
    timings = Timings()
    if startup_s is not None:
        timings.stages["startup"] = startup_s
    _check_options(cfg)
    periodicity = option_name(cfg.index.periodicity)
    solver = option_name(cfg.solver.name)
    tuning = {f.name: getattr(cfg.method, f.name) for f in dataclasses.fields(MethodTuning)}
    method = MethodOptions(name=option_name(cfg.method.name), stage2=option_name(cfg.method.stage2), **tuning)
    files = cfg.data if isinstance(cfg.data, FileDataConfig) else None  # pairs or sale records
    with timings.stage("check_input"):
        check_outputs(cfg, out_dir, frame is not None)  # no output written over an input
        inputs = [] if cfg.data.kind == "synthetic" else input_paths(cfg.data, frame is not None)
        fingerprints = {path: fingerprint(path) for path in inputs}  # the run record's, the tables' lineage
        if frame is None:
            check_input(cfg.data)  # what the files' footers refuse, before the device is set up
    with timings.stage("setup"):
        warmup.wait()  # started by the command line (backend/warmup.py); its remaining time counts here
        backend = resolve_backend(option_name(cfg.backend.name))
        memory_note = configure_memory(
            backend,
            pool=cfg.memory.pool,
            initial_pool_size=cfg.memory.initial_pool_size,
            maximum_pool_size=cfg.memory.maximum_pool_size,
            managed_memory=cfg.memory.managed_memory,
        )
        keep_pairs = solver != "normal" or method.needs_pairs or cfg.diagnostics.accuracy_folds > 0
        if frame is not None:  # a cudf frame stays on the device where libcudf reads for the backend
            frame = device.frame_for(frame, backend, str(cfg.data.kind))
        plan = read_plan(cfg, backend, keep_pairs, frame)  # on a GPU pylibcudf's import counts here, not in the reading
    if cfg.output.plot:
        # the chart's imports (~0.5 s) while the data are read: on the GPU the host is idle; on the
        # CPU DuckDB's query and numpy release the GIL
        threading.Thread(target=importlib.import_module, args=("matplotlib.figure",), daemon=True).start()
    how = "requested" if option_name(cfg.backend.name) != "auto" else "chosen by backend=auto"
    # the memory note only where it applies (the GPU): no word about options a CPU run ignores
    log.info("backend %s (%s): %s%s", backend.name, backend.device, how, f"; {memory_note}" if memory_note else "")

    strict = files is not None and files.strict
    add_cells = None if files is None else files.add_cells
    if add_cells:
        check_table_only(cfg, method, solver, "data.add_cells")
    if isinstance(cfg.data, CellsDataConfig):
        check_table_only(cfg, method, solver, "data=cells")
    saving = isinstance(cfg.data, TransactionsDataConfig) and bool(cfg.data.save_pairs)
    prices = method.name == "arithmetic" or bool(cfg.output.cells or add_cells)  # the price sums of sale records
    clustered = on_cluster(cfg)
    # a sweep's jobs share a read (not a frame's, which its caller may change, nor a cluster's)
    shared = reads if frame is None and not clustered else None
    key = read_key(cfg, periodicity, backend, prices, [fingerprints[p] for p in inputs]) if shared else ""
    loaded = shared.take(key, keep_pairs or saving) if shared else None
    if loaded is None:
        loaded = load(
            plan, cfg, periodicity, backend, method, strict, keep_pairs or saving, prices, timings, resources, frame
        )
        if shared:
            shared.hold(key, loaded, keep_pairs or saving)
    if frame is not None:
        loaded = replace(loaded, lineage=[frame_fingerprint(frame)])
    elif files is not None:  # the pairs came from these files (a stored table's lineage is its own)
        data_files = input_files(str(files.path), option_name(files.format))[0]
        # pairs saved by a run (data.save_pairs) also stand for the sale records they were made from
        lineage = [fp for path in data_files for fp in (fingerprints[path], *derived_inputs(path))]
        loaded = replace(loaded, lineage=lineage)
    else:  # a synthetic market: its options are its identity
        loaded = replace(loaded, lineage=[market_fingerprint(cfg.data)])
    if add_cells:
        with timings.stage("add_cells"):
            recount = bool(getattr(cfg.data, "allow_double_count", False))
            window = input_window(cfg.data, periodicity)
            loaded = add_stored_cells(loaded, cell_files(add_cells), periodicity, backend, recount, window)
    table, pairs, market = loaded.table, loaded.pairs, loaded.market
    if table.n_pairs == 0:
        raise DataError(f"none of the input's pairs is usable ({drop_text(add_counts(loaded.dropped, table.dropped))})")
    calendar = Calendar(periodicity, loaded.first_period, table.n_periods)
    if not keep_pairs:
        pairs = None
    base = 0 if cfg.index.base_period is None else calendar.position(cfg.index.base_period)
    # a table-only fit is a few MB of (G, T, T) solves: on the host in float64, whatever the backend
    on_host = solver == "normal" and not method.needs_pairs
    refit = Refit(method, cfg.index.min_pairs, bool(cfg.index.groups), bool(cfg.index.pooled))
    fit_options: dict[str, Any] = dict(
        backend=resolve_backend("cpu") if on_host else backend,
        method=method,
        min_pairs=cfg.index.min_pairs,
        groups=cfg.index.groups,
        pooled=cfg.index.pooled,
    )
    with timings.stage("solve", backend), warnings.catch_warnings():
        # the library's warning of unidentified values points at IndexResult.unidentified; the
        # command line's, once the outputs are written, at unidentified.csv (_warn_unidentified); a
        # frame's caller gets the IndexResult, so the library's words
        if frame is None:
            warnings.filterwarnings("ignore", message=f".*{re.escape(UNIDENTIFIED)}", category=IdentificationWarning)
        result = fit_index(
            table.to_host() if on_host else table,
            pairs=loaded.kept
            if loaded.kept is not None
            else (None if on_host else pairs),  # a table-only fit never reads them
            solver=solver,
            base_period=base,
            period_labels=calendar.labels(),
            tol=cfg.solver.tol,
            iter_lim=cfg.solver.iter_lim,
            operator=cfg.solver.operator.value,
            **fit_options,
        )
    with timings.stage("diagnostics", backend):
        diag = run_diagnostics(cfg.diagnostics, result, table, pairs, refit, backend, loaded.kept)

    dropped = add_counts(loaded.dropped, table.dropped)
    if strict:
        check_strict(dropped)
    # pairs the estimator itself left out (Case-Shiller's stage-2 weight 0; not bad data, so not
    # under strict), as the regions' fit counts them
    fit_info = result.solver_info.get("groups") or result.solver_info.get("pooled") or {}
    if fit_info.get("zero_weight_pairs"):
        dropped = {**dropped, "zero_weight": int(fit_info["zero_weight_pairs"])}
    check_estimated(result, table.n_pairs, dropped)
    summary = run_summary(cfg, result, table, dropped, backend, calendar, solver, market)
    summary.update(loaded.extra)  # the reader that read, the sale records' counts, ...
    read = [fingerprints[path] for path in inputs] + ([frame_fingerprint(frame)] if frame is not None else [])
    summary["run"] = run_record(cfg, read, backend, command_line)
    summary["diagnostics"] = diag.summary
    # the stored table carries every drop count, the readers' included, for later runs to report
    cells = (replace(table, dropped=dropped), calendar, loaded.lineage) if cfg.output.cells or add_cells else None
    columns = series_columns(cfg.index, result, calendar.periodicity, summary)
    # the pairs of data.save_pairs are written with the run's other outputs: only by a run that succeeds
    saved = (
        (loaded.pairs, calendar, str(cfg.data.save_pairs), loaded.lineage)
        if saving and loaded.pairs is not None
        else None
    )
    write_outputs(
        result,
        out_dir,
        cfg.output,
        summary,
        timings,
        diag,
        cells,
        columns,
        backend=backend,
        saved_pairs=saved,
        inputs=inputs,
    )
    if frame is None:
        _warn_unidentified(result, out_dir)
    return result, summary


def _warn_unidentified(result: IndexResult, out_dir: Path) -> None:
    """The index values left empty, in words a command-line user can follow: the file that lists
    them (written with the outputs) and the summary's count."""
    missing = result.unidentified
    if len(missing):
        warnings.warn(
            f"{len(missing):,} {UNIDENTIFIED} and left empty (NaN) in the index (in {missing['group'].nunique()} "
            f"group(s)): their group, period and reason are in {out_dir / UNIDENTIFIED_CSV} "
            "(summary.json: n_unidentified)",
            IdentificationWarning,
            stacklevel=3,
        )


def _check_options(cfg: AppConfig) -> None:
    """Refuse impossible option values before any data is read."""
    if not 0 < cfg.output.ci_level < 1:
        raise ConfigError(f"output.ci_level must be between 0 and 1, got {cfg.output.ci_level}")
    if isinstance(cfg.data, FileDataConfig) and cfg.data.batch_rows < 1:
        raise ConfigError(f"data.batch_rows must be positive, got {cfg.data.batch_rows}")
    check_limits(cfg.solver.tol, cfg.solver.iter_lim)  # the method's own options: MethodOptions
    if cfg.index.base_period is not None:
        parse_period(cfg.index.base_period, option_name(cfg.index.periodicity))  # its form; the window comes later
    if cfg.index.min_pairs is not None and cfg.index.min_pairs < 1:
        raise ConfigError(f"index.min_pairs must be at least 1 (or null), got {cfg.index.min_pairs}")
    if cfg.output.plot_groups < 0:
        raise ConfigError(f"output.plot_groups must be 0 or more, got {cfg.output.plot_groups}")
    check_memory_sizes(cfg.memory.initial_pool_size, cfg.memory.maximum_pool_size)
    periodicity = option_name(cfg.index.periodicity)
    if cfg.index.seasonal_adjust is not None and periodicity not in SEASONS:
        raise ConfigError(
            f"index.seasonal_adjust needs monthly or quarterly periods, got index.periodicity={periodicity}"
        )
    _check_diagnostics(cfg.diagnostics)


def _check_diagnostics(cfg: DiagnosticsConfig) -> None:
    if cfg.volatility_window < 2:
        raise ConfigError(f"diagnostics.volatility_window must be at least 2, got {cfg.volatility_window}")
    if cfg.smooth_window and (cfg.smooth_window < 3 or cfg.smooth_window % 2 == 0):
        raise ConfigError(f"diagnostics.smooth_window must be 0 (off) or an odd number >= 3, got {cfg.smooth_window}")
    if cfg.revision_regions is not None and cfg.revision_regions < 0:
        raise ConfigError(
            f"diagnostics.revision_regions must be 0 or more (or null: every region), got {cfg.revision_regions}"
        )
    if cfg.accuracy_folds and not 2 <= cfg.accuracy_folds <= 100:
        raise ConfigError(f"diagnostics.accuracy_folds must be 0 (off) or 2..100, got {cfg.accuracy_folds}")
