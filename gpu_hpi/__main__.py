"""`python -m gpu_hpi [overrides]`: the Hydra application.

The overrides are composed once, up front (app/command.py), so that a bad one fails with a
one-line message and exit code 2 before Hydra starts a run; the run directory is resolved then
too: checked writable, and owned by this run through an exclusive lock (a second run into it exits
2 naming the first one's pid) before Hydra writes anything there. Errors in the data likewise exit
2 without a traceback (`debug=true` shows it). SIGINT / SIGTERM stop the run with one line, exit
130 / 143, and leave no temporary file; a running DuckDB query is interrupted at once.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import IO, Any, NoReturn

# numpy asks for transparent huge pages on its large arrays; where the kernel then compacts memory
# synchronously at the first touch (THP defrag "madvise", the Linux default), fresh temporaries
# stall: the 10,000-region cell table took 2.7-3.3 s against 1.9 s without (BENCHMARKS.md).
# Set before numpy is imported; the user's own setting wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from . import stops
from .app.command import (
    check_values,
    mode_of,
    one_line,
    own_run_dir,
    release_run_dir,
    run_once,
    take_job_dir,
)
from .backend import warmup
from .config import config_dir, option_name, register_configs
from .errors import ConfigError, GpuHpiError, Stopped, clear_stops, raise_stop

EXIT_BAD_INPUT = 2
log = logging.getLogger("gpu_hpi")


_reads: Any = None  # the reads a sweep's jobs share (-m: Hydra runs them one after another here)
_collector_held = False  # cli() turned the garbage collector off for the start-up
_saved_pairs: set[str] = set()  # the data.save_pairs files a sweep's jobs wrote, in this process


def _task(cfg: DictConfig) -> None:
    run_job(cfg, Path(HydraConfig.get().runtime.output_dir), command_line=True)


# Hydra's flags (-m, --cfg job, --info) go through Hydra's own entry point
_app = hydra.main(config_path=None, config_name="config", version_base=None)(_task)


def run_job(cfg: DictConfig, out_dir: Path, startup_s: float | None = None, *, command_line: bool = False) -> None:
    """The job of one composed configuration, as the command line runs it: outputs into out_dir and
    the summary printed; a GpuHpiError is one line on stderr and exit code 2 (SystemExit), or its
    traceback under debug=true; warnings one line each unless debug=true. command_line: this
    process is the command line's: the input's footers are checked before the run's modules are
    imported (a refusal costs no more), then a GPU run's warm-up starts (backend/warmup.py) beside
    those imports, and the start-up is the process's age once they are done."""
    if not cfg.debug:  # warnings as one line each; debug=true keeps Python's form (file and line)
        warnings.formatwarning = _one_line_warning
    lock = None
    try:
        if command_line:
            from .app.preflight import check_input, check_outputs, uses_device_arrays

            lock = _own_sweep_job(cfg, out_dir)
            check_values(cfg)  # a sweep's job, composed by Hydra's entry point (a single run's: once more, ~2 ms)
            check_outputs(cfg, out_dir)
            check_input(cfg.data)
            if option_name(cfg.backend.name) != "cpu":
                warmup.start(arrays=uses_device_arrays(cfg))
        from .app.pipeline import run  # imported here so that config errors never pay for numpy/pyarrow

        _start_collecting()

        overrides = list(HydraConfig.get().overrides.task) if command_line else None
        global _reads
        first_job = _reads is None  # a sweep's later jobs start at once: no start-up of their own
        if command_line and _reads is None:
            from .app.loaders import SharedReads

            _reads = SharedReads()
        summary = run(
            cfg,
            out_dir,
            startup_s=(process_age() if first_job else None) if command_line else startup_s,
            command_line=overrides,
            reads=_reads if command_line else None,
        )
    except Exception as exc:
        # a library's own error for the signal that interrupted it (DuckDB's "Query interrupted",
        # Dask's cancelled tasks) is the stop itself
        raise_stop()
        if cfg.debug or not isinstance(exc, GpuHpiError):
            raise
        print(f"gpu_hpi: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    finally:
        if lock is not None:
            release_run_dir(lock)
    _print_summary(summary, out_dir)


def _own_sweep_job(cfg: DictConfig, out_dir: Path) -> IO[str] | None:
    """A sweep's job (Hydra's entry point runs it): the lock of its directory, which run_once takes
    for a single run (a sweep and a run into one directory mixed their sets): the one the sweeper
    took before Hydra staged the job's configuration there, else its own now; and a data.save_pairs
    of its own (each job wrote over the last). None for a single run."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    lock = take_job_dir(out_dir) or own_run_dir(out_dir)
    saved = getattr(cfg.data, "save_pairs", None)
    path = os.path.realpath(os.path.expanduser(str(saved))) if saved else None
    if path in _saved_pairs:
        release_run_dir(lock)
        raise ConfigError(
            f"data.save_pairs={saved} was written by an earlier job of this sweep; give each job its own "
            "file, e.g. data.save_pairs=pairs-${hydra:job.num}.parquet"
        )
    if path:
        _saved_pairs.add(path)
    return lock


def _start_collecting() -> None:
    """In cli()'s process, the garbage collector back on once the start-up's modules are imported,
    with what they made frozen out of its passes: these objects live as long as the process, and
    scanning them again and again took ~0.1 s of the start-up. Elsewhere (main() called in a
    process of the caller's) nothing changes."""
    global _collector_held
    if _collector_held:
        _collector_held = False
        gc.freeze()
        gc.enable()


def _one_line_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    return f"gpu_hpi: warning: {str(message).splitlines()[0]}\n"


def process_age() -> float | None:
    """Seconds since this process started (interpreter start-up, imports, Hydra's composition), from
    Linux's /proc; None where that is not available."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


def _print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    pooled = summary.get("n_pairs_used_pooled")
    differs = pooled is not None and summary["n_groups"] and pooled != summary["n_pairs_used"]
    in_pooled = f" ({pooled:,} in the pooled index)" if differs else ""  # e.g. regions skipped
    used = f"{summary['n_pairs_used']:,} of {summary['n_pairs_read']:,} pairs{in_pooled}"
    lines = [
        f"gpu_hpi: {used}, {summary['n_groups']} group(s), "
        f"{summary['n_periods']} periods {summary['first_period']}..{summary['last_period']} "
        f"(base {summary['base_period']} = 100)",
        f"  method {summary['method']}, solver {summary['solver']}, backend {summary['backend']} ({summary['device']})",
    ]
    if summary["dropped"]:
        lines.append("  dropped: " + ", ".join(f"{k} {v:,}" for k, v in summary["dropped"].items()))
    if "max_abs_error_vs_true_log_index" in summary:
        lines.append(f"  max |error| against the true log index: {summary['max_abs_error_vs_true_log_index']:.4f}")
    total = sum(summary["timings_s"].values())
    lines.append(f"  time {total:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in summary['timings_s'].items())})")
    lines.append(f"  outputs: {out_dir}/{{{','.join(summary['outputs'])}}}")
    print("\n".join(lines))


def main() -> None:
    global _reads
    _reads = None  # a command line's jobs share reads, never two command lines' (in one process: tests)
    _saved_pairs.clear()
    register_configs()
    args = sys.argv[1:]
    clear_stops()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stops.on_signal)
    sys.unraisablehook = stops.unraisable
    try:
        if "--help" in args or "-h" in args:  # every choice and data kind, not Hydra's composed config alone
            _help([a for a in args if not a.startswith("-")])
            return
        if any(a.lstrip("+").startswith("hydra.output_subdir=") for a in args):  # the commit's own folder
            _fail("hydra.output_subdir is where a run stages its configuration until its outputs commit; leave it")
        if any(a.startswith("-") for a in args) or mode_of(args) == "MULTIRUN":
            # Hydra's own flags (--cfg job, -m) and hydra.mode=MULTIRUN: Hydra's entry point
            sys.argv = [sys.argv[0], f"--config-dir={config_dir()}", *args]
            with stops.interrupting_queries():
                _app()
            return
        with stops.interrupting_queries():
            run_once(_task, args, refuse=_fail)
    except KeyboardInterrupt:
        print("gpu_hpi: interrupted; no output was committed unless summary.json is there", file=sys.stderr)
        sys.exit(130)
    except Stopped:
        print("gpu_hpi: stopped (SIGTERM); no output was committed unless summary.json is there", file=sys.stderr)
        sys.exit(143)


def _help(overrides: list[str]) -> None:
    from .usage import usage

    try:  # the overrides compose (a data.path may still be missing) or are refused in one line
        text = usage(config_dir(), overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        _fail(one_line(exc))
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `gpu-hpi --help | head`: the rest goes nowhere, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _fail(message: str) -> NoReturn:
    print(f"gpu_hpi: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def exit_status(exc: SystemExit) -> int:
    """The exit status the interpreter gives this SystemExit, its message printed as it would be."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def cli() -> NoReturn:
    """`python -m gpu_hpi` and the `gpu-hpi` script: main(), then the end of the process without the
    interpreter's teardown (freeing the modules and objects of numpy, pandas, pyarrow, DuckDB and
    matplotlib took 0.25 s of a 5.6 s run, BENCHMARKS.md). By then every output is committed or
    none is; the streams and the log are flushed and the exit handlers (DuckDB's spill directory,
    Dask's) run first. main() itself returns, for callers in a process of their own."""
    import atexit

    # the start-up (imports, the composition) makes objects that live as long as the process: no
    # garbage worth a collector's pass until the run starts (run_job turns it back on)
    global _collector_held
    gc.disable()
    _collector_held = True
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exit_status(exc)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    cli()
