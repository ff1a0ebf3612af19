"""The input of `python -m gpu_hpi` read by the reader its plan names (app/plan.py): pairs
(load_pairs), sale records (load_sales) or stored cell tables (here), each into a cell table (and
the pairs where a method needs them)."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from dataclasses import replace
from typing import Any

from ..backend.core import Backend
from ..config import AppConfig, CellsDataConfig, FileDataConfig, option_name, plain
from ..data.calendar import Calendar
from ..errors import ConfigError, DataError
from ..estimation.methods import MethodOptions
from ..io import device
from ..io.files import input_files
from ..io.sql import Unsupported
from ..io.store import cell_files, combine_tables, load_cells, same_input, stored_inputs, window_cells
from .load_pairs import load_pairs
from .load_sales import load_sales
from .loaded import Loaded
from .plan import Reader, ReadPlan, plan_reading
from .stages import Timings

log = logging.getLogger("gpu_hpi")


def read_plan(cfg: AppConfig, backend: Backend, keep_pairs: bool, frame: Any = None) -> ReadPlan:
    """The plan of this configuration's input on this backend (`frame`: the data in memory)."""
    file_format = (
        ("device_frame" if isinstance(frame, device.DeviceFrame) else "frame")
        if frame is not None
        else input_files(str(cfg.data.path), option_name(cfg.data.format))[1]
        if isinstance(cfg.data, FileDataConfig)
        else None
    )
    clustered = on_cluster(cfg)
    device_reader = file_format == "parquet" and device.serves(backend)
    plan = plan_reading(str(cfg.data.kind), file_format, backend.name, device_reader, clustered, keep_pairs)
    if clustered and plan.reader is not Reader.DASK:  # the options are not silently without effect
        warnings.warn(f"the Dask cluster reads pair files (data=pairs); {plan.why}: read in this process", stacklevel=2)
    return plan


def on_cluster(cfg: AppConfig) -> bool:
    """Whether the run reads on a Dask cluster (a local one, or a scheduler's address)."""
    return option_name(cfg.cluster.kind) != "none" or bool(cfg.cluster.address)


def load(
    plan: ReadPlan,
    cfg: AppConfig,
    periodicity: str,
    backend: Backend,
    method: MethodOptions,
    strict: bool,
    keep_pairs: bool,
    prices: bool,
    timings: Timings,
    resources: contextlib.ExitStack,
    frame: Any = None,
) -> Loaded:
    """The input read by the plan's reader, each kind in its stage, or by the plan's fallback where
    the reader declines it (io.sql.Unsupported); summary.json's "reader" names the one that read.
    frame: the pairs or sale records in memory (a pyarrow Table, or io.device.DeviceFrame), in
    place of data.path's files."""
    log.info("reader %s: %s", plan.reader.value, plan.why)

    def read(reader: Reader) -> Loaded:
        if reader is Reader.STORED_CELLS:
            assert isinstance(cfg.data, CellsDataConfig)
            with timings.stage("read_cells"):
                return stored_cells(cell_files(cfg.data.path), periodicity, backend, cfg.data.allow_double_count)
        if reader in (Reader.DUCKDB_SALES, Reader.DEVICE_SALES, Reader.ARRAY_SALES):
            with timings.stage("read_and_pair", backend):
                return load_sales(reader, cfg, periodicity, backend, strict, keep_pairs, prices, frame)
        return load_pairs(reader, cfg, periodicity, backend, method, strict, keep_pairs, timings, resources, frame)

    try:
        loaded, used = read(plan.reader), plan.reader
    except Unsupported as declined:
        if plan.fallback is None:
            raise
        log.info("%s declined the input (%s): %s reads it", plan.reader.value, declined, plan.fallback.value)
        loaded, used = read(plan.fallback), plan.fallback
    return replace(loaded, extra={"reader": used.value, **loaded.extra})


def check_table_only(cfg: AppConfig, method: MethodOptions, solver: str, source: str) -> None:
    """With stored cell tables there are no pairs: refuse what needs them, before reading."""
    if method.needs_pairs:
        what = "method=robust" if method.name == "robust" else "method.stage2=absolute (the |e| stage 2)"
        raise ConfigError(f"{what} needs the pairs themselves; with {source} only cell tables are available")
    if solver != "normal":
        raise ConfigError(f"solver={solver} needs the pairs; with {source} use solver=normal")
    if cfg.diagnostics.accuracy_folds:
        raise ConfigError(f"diagnostics.accuracy_folds needs the pairs; with {source} set it to 0")


def stored_cells(files: list[str], periodicity: str, backend: Backend, recount: bool = False) -> Loaded:
    """The stored tables added up; DataError where two of them count pairs of the same input file
    (unless recount: data.allow_double_count)."""
    lineage: list[dict[str, Any]] = []
    for path in files:
        mine = stored_inputs(path)
        if not recount:
            check_counted_once(mine, lineage, f"the cell table {path}")
        lineage += mine
    table, calendar = combine_tables([load_cells(f) for f in files])
    if calendar.periodicity != periodicity:
        raise DataError(f"the cell tables are by {calendar.periodicity}; set index.periodicity={calendar.periodicity}")
    return Loaded(table.to_backend(backend), calendar.start, None, {}, extra={"cell_tables": files}, lineage=lineage)


def add_stored_cells(
    loaded: Loaded,
    files: list[str],
    periodicity: str,
    backend: Backend,
    recount: bool,
    window: tuple[int | None, int | None] = (None, None),
) -> Loaded:
    """The new pairs' table plus the stored tables of earlier pairs (calendars aligned), within the
    window data.start / data.end gives the new pairs (the stored cells outside it are dropped and
    counted, as new pairs outside it are); DataError where a stored table already counts the new
    pairs' input files (unless recount)."""
    new = (loaded.table.to_host(), Calendar(periodicity, loaded.first_period, loaded.table.n_periods))
    stored = stored_cells(files, periodicity, backend, recount)
    if not recount:
        check_counted_once(loaded.lineage, stored.lineage, "the input")
    old = (stored.table.to_host(), Calendar(periodicity, stored.first_period, stored.table.n_periods))
    if window != (None, None):
        old = window_cells(*old, *window)
    table, calendar = combine_tables([old, new])
    extra = {**loaded.extra, "added_cell_tables": files, "n_pairs_added_from_cells": old[0].n_pairs}
    return Loaded(
        table.to_backend(backend),
        calendar.start,
        None,
        loaded.dropped,
        loaded.market,
        extra,
        lineage=[*stored.lineage, *loaded.lineage],
    )


def check_counted_once(new: list[dict[str, Any]], counted: list[dict[str, Any]], what: str) -> None:
    """DataError where a file of `new` is among the files already counted."""
    for fingerprint in new:
        for earlier in counted:
            if same_input(fingerprint, earlier):
                raise DataError(
                    f"{what} counts pairs of {_named(fingerprint)} again (a table already holds those of "
                    f"{_named(earlier)}, the same file by its fingerprint); data.allow_double_count=true adds "
                    "them anyway"
                )


def _named(fingerprint: dict[str, Any]) -> str:
    if fingerprint.get("path"):
        return str(fingerprint["path"])
    market = fingerprint.get("synthetic")
    return f"the synthetic market of seed {market.get('seed')}" if isinstance(market, dict) else "a frame"


class SharedReads:
    """What the last job of this process read, for a later job whose read is the same: a sweep's
    jobs (`python -m gpu_hpi -m method=bmn,case_shiller index.base_period=...`) differ in what they
    fit, not in what they read. Keyed by the data options, the periodicity, the backend, whether
    price sums are read and the input files' fingerprints (a file changed between jobs is read
    again); a read that kept the pairs serves a job that needs only the table, not the reverse.
    One read is held: a job that reads other data drops it first, so a sweep holds one at a time."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.loaded: Loaded | None = None
        self.kept_pairs = False

    def take(self, key: str, keep_pairs: bool) -> Loaded | None:
        """The read of this key (marked as reused in the summary), or None after dropping the held one."""
        if self.loaded is not None and key == self.key and (self.kept_pairs or not keep_pairs):
            return replace(self.loaded, extra={**self.loaded.extra, "reused_read": True})
        self.key, self.loaded = None, None  # its memory free before the next read
        return None

    def hold(self, key: str, loaded: Loaded, kept_pairs: bool) -> None:
        self.key, self.loaded, self.kept_pairs = key, loaded, kept_pairs


def read_key(cfg: AppConfig, periodicity: str, backend: Backend, prices: bool, inputs: list[dict[str, Any]]) -> str:
    """SharedReads' key of a job's read: everything the read depends on."""
    data = plain(cfg.data)
    what = {"data": data, "periodicity": periodicity, "backend": backend.name, "prices": prices}
    return json.dumps({**what, "inputs": inputs}, sort_keys=True, default=str)
