"""The output files of a run, written as one set: each to a temporary name, then all renamed in
one step that a signal waits for, the earlier run's set replaced as a whole, summary.json last."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..backend.core import Backend
from ..backend.memory import peak_device_bytes
from ..charts import diagnostics_chart, regions_chart
from ..config import OutputConfig
from ..data.calendar import Calendar
from ..data.cells import CellTable
from ..data.pairs import Pairs
from ..errors import DataError, raise_stop, record_stop
from ..estimation.result import IndexResult
from ..io.files import write_csv
from ..io.store import save_cells, save_pairs
from .preflight import CONFIG_FOLDERS, UNIDENTIFIED_CSV
from .report import DiagnosticsOutput
from .stages import Timings


def write_outputs(
    result: IndexResult,
    out_dir: Path,
    output: OutputConfig,
    summary: dict[str, Any],
    timings: Timings,
    diagnostics: DiagnosticsOutput | None = None,
    cells: tuple[CellTable, Calendar, list[dict[str, Any]]] | None = None,
    columns: dict[str, Any] | None = None,
    *,
    backend: Backend,
    saved_pairs: tuple[Pairs, Calendar, str, list[dict[str, Any]]] | None = None,
    inputs: list[str] | None = None,
) -> None:
    """Write every output to a temporary name first and rename them all at the end, so that a
    failure leaves no partial output; saved_pairs: (pairs, calendar, path, the inputs' fingerprints)
    of data.save_pairs, one of them. The "write" stage in summary.json counts everything up to summary.json itself."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = result.to_frame(float(output.ci_level))
    for name, values in (columns or {}).items():  # index.fill, index.seasonal_adjust (analysis/series.py)
        frame[name] = np.asarray(values).ravel()
    if diagnostics is not None and diagnostics.smoothed is not None:
        frame["index_smoothed"] = diagnostics.smoothed.ravel()
    written: list[tuple[Path, Path]] = []

    def temp(name: str, folder: Path = out_dir) -> Path:
        final, tmp = folder / name, folder / f".{name}.tmp"
        written.append((tmp, final))
        return tmp

    try:
        if output.csv:
            write_csv(frame, temp("index.csv"))
        if output.parquet:
            frame.to_parquet(temp("index.parquet"), index=False)
        missing = result.unidentified
        if len(missing):  # what the command line's warning names: the empty values of index.csv, and why
            write_csv(missing.astype({"group": str, "period": str}), temp(UNIDENTIFIED_CSV))
        if diagnostics is not None:
            write_csv(diagnostics.frame, temp("diagnostics.csv"))
            if diagnostics.accuracy is not None:
                write_csv(diagnostics.accuracy, temp("accuracy.csv"))
            if diagnostics.vintages is not None:
                diagnostics.vintages.to_parquet(temp("vintages.parquet"), index=False)
        if cells is not None:
            table, calendar, lineage = cells
            save_cells(table, calendar, temp("cells.parquet"), lineage)
        if output.plot:
            result.plot(str(temp("index.png")), int(output.plot_groups), float(output.ci_level))
        if output.plot_regions and (result.groups != "ALL").any():
            regions_chart(result, str(temp("regions.png")), float(output.ci_level), columns)
        if output.plot_diagnostics and diagnostics is not None:
            diagnostics_chart(diagnostics.frame, result.periods, str(temp("diagnostics.png")))
        timings.stages["write"] = time.perf_counter() - started
        summary["timings_s"] = {k: round(v, 4) for k, v in timings.stages.items()}
        summary["peak_host_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        summary["peak_device_bytes"] = peak_device_bytes(backend)
        summary["outputs"] = [final.name for _, final in written] + ["summary.json"]
        if saved_pairs is not None:
            pairs, calendar, path, lineage = saved_pairs
            final = Path(os.path.expanduser(path)).absolute()
            try:  # a folder the check before the run could not know unwritable (/proc, as root)
                final.parent.mkdir(parents=True, exist_ok=True)
                save_pairs(pairs, calendar, temp(final.name, final.parent), lineage)
            except OSError as exc:
                raise DataError(f"cannot write data.save_pairs={path}: {exc.strerror or exc}") from exc
            summary["saved_pairs"] = str(final)
        temp("summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    except BaseException:
        with _signals_held():  # a second Ctrl-C does not cut the clean-up short
            _remove(written)
        raise
    with _signals_held():  # the renames as one step: a signal waits until they are done
        try:
            raise_stop()  # a signal whose exception a finaliser swallowed: still no commit
            replace_run_set(out_dir, written, inputs or [])
        except BaseException as exc:
            _remove(written)
            if isinstance(exc, OSError):  # the earlier summary.json goes first: no mixed set is marked complete
                kept = (
                    "the earlier set is as it was"
                    if (out_dir / "summary.json").exists()
                    else "no complete set is there"
                )
                raise DataError(f"cannot commit the outputs in {out_dir}: {exc}; {kept}") from exc
            raise
    raise_stop()  # a signal that came during the renames: the run stops now, its set complete


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM recorded, not raised, inside (raise_stop raises them after). Blocking
    them in this thread is not enough: the kernel may hand one to another thread (BLAS's,
    DuckDB's) and Python then runs the handler here, so the handlers only record it meanwhile."""
    signals = {signal.SIGINT, signal.SIGTERM}
    main = threading.current_thread() is threading.main_thread()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals) if main else None
    handlers = {sig: signal.signal(sig, _record_stop) for sig in signals} if main else {}
    try:
        yield
    finally:  # unblocked first: one that waited goes to the recording handler, not the one restored
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in handlers.items():
            if handler is not None:  # None: a handler not set from Python, which is left alone
                signal.signal(sig, handler)


def _remove(written: list[tuple[Path, Path]]) -> None:
    for tmp, _ in written:
        tmp.unlink(missing_ok=True)


def _record_stop(signum: int, frame: Any) -> None:
    record_stop(signum)


def replace_run_set(out_dir: Path, written: list[tuple[Path, Path]], inputs: list[str]) -> None:
    """The new outputs in place of the earlier run's whole set: its files this run did not write go
    (those listed in its summary.json, and no other file; never one this run read), the
    configuration staged by the command line becomes .hydra/, and summary.json, renamed last, marks
    the complete set."""
    earlier = out_dir / "summary.json"
    try:
        listed = json.loads(earlier.read_text()).get("outputs", []) if earlier.exists() else []
    except (OSError, ValueError):  # an unreadable summary: it is replaced, nothing else is touched
        listed = []
    earlier.unlink(missing_ok=True)  # first: a commit cut short leaves no set marked complete
    fresh = {final.name for _, final in written if final.parent == out_dir}
    summary = [(tmp, final) for tmp, final in written if final == earlier]
    for tmp, final in [pair for pair in written if pair not in summary]:
        os.replace(tmp, final)
    read = {os.path.realpath(path) for path in inputs}
    for name in map(str, listed):
        stale = out_dir / name
        ours = name not in fresh and "/" not in name and not name.startswith(".")
        if ours and os.path.realpath(stale) not in read:
            stale.unlink(missing_ok=True)
    committed, staged = (out_dir / name for name in CONFIG_FOLDERS)
    if staged.is_dir():
        shutil.rmtree(committed, ignore_errors=True)
        os.replace(staged, committed)
    for tmp, final in summary:
        os.replace(tmp, final)
