"""`python -m gpu_hpi [overrides]`: the Hydra application.

The overrides are composed once, up front, so that a bad one fails with a one-line message and
exit code 2 before Hydra starts a run; Hydra's run then takes that composition rather than
composing twice more (its check of the mode and its run: ~0.08 s each). Errors in the data likewise
exit 2 without a traceback
(`debug=true` shows it). The run directory is resolved then too: checked writable, and owned by
this run through an exclusive lock (a second run into it exits 2 naming the first one's pid)
before Hydra writes anything there. SIGINT / SIGTERM stop the run with one line, exit 130 / 143,
and leave no temporary file; a running DuckDB query is interrupted at once.
"""

from __future__ import annotations

import fcntl
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
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException

from . import stops
from .backend import warmup
from .config import config_dir, option_name, register_configs
from .errors import GpuHpiError, Stopped, clear_stops, raise_stop

EXIT_BAD_INPUT = 2
log = logging.getLogger("gpu_hpi")


def _one_line(exc: BaseException) -> str:
    """A single line out of Hydra's / OmegaConf's multi-line messages."""
    if isinstance(exc, MissingConfigException):
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        head = lines[0].split(": ", 1)[-1]
        options = [ln for ln in lines[2:] if not ln.startswith(("Config search path", "provider="))]
        available = [ln for ln in options if "Available" not in ln]
        return f"{head} (available: {', '.join(available)})" if available else head
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    first = str(exc).splitlines()[0].rstrip(".")
    if isinstance(exc, OmegaConfBaseException) and getattr(exc, "full_key", None):
        first = f"{first.split(':')[0]}: {exc.full_key}"
    return f"{first}: {str(cause).splitlines()[0]}" if cause else first


def _compose(application: Any, overrides: list[str]) -> tuple[str | None, DictConfig | None]:
    """(the one-line error, None) for overrides that do not compose, else (None, the config with
    Hydra's own, so that the run directory can be resolved), composed by Hydra's application
    object as its run would compose it."""
    try:
        cfg = application.compose_config(config_name="config", overrides=overrides, run_mode=RunMode.RUN)
        body = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
        OmegaConf.to_container(body, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        return _one_line(exc), None
    return None, cfg


def _application() -> Any:
    """Hydra's application object as `@hydra.main` makes it for this entry point with conf/ as
    its --config-dir: the same search path and job name, so the same composition."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
    )
    from hydra.core.config_search_path import SearchPathQuery

    calling_file, calling_module = detect_calling_file_or_module_from_task_function(_task)
    search_path = create_automatic_config_search_path(calling_file, calling_module, None)
    conf = f"file://{os.path.abspath(config_dir())}"
    search_path.prepend(provider="command-line", path=conf, anchor=SearchPathQuery(provider="schema"))
    task_name = detect_task_name(calling_file, calling_module)
    return Hydra.create_main_hydra2(task_name=task_name, config_search_path=search_path)


class _Composed:
    """Hydra's config loader, but for the run's composition, which is the one main() made (and
    pinned the run directory in): Hydra's run takes it as its own."""

    def __init__(self, loader: Any, overrides: list[str], cfg: DictConfig) -> None:
        self._loader, self._overrides = loader, overrides
        self._cfg: DictConfig | None = cfg

    def load_configuration(self, config_name: str | None, overrides: list[str], run_mode: RunMode, **kw: Any) -> Any:
        cfg, self._cfg = self._cfg, None
        if cfg is not None and run_mode == RunMode.RUN and list(overrides) == self._overrides:
            return cfg
        return self._loader.load_configuration(config_name, overrides, run_mode, **kw)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_loader", "_overrides", "_cfg"):
            raise AttributeError(name)
        return getattr(self._loader, name)


def _writable_problem(run_dir: Path) -> str | None:
    """Why the run directory cannot be created or written to, or None."""
    if run_dir.exists() and not run_dir.is_dir():
        return f"the output directory {run_dir} is a file"
    existing = run_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write the output directory {run_dir}: {existing} is not writable"
    return None


def own_run_dir(run_dir: Path) -> IO[str]:
    """Create the run directory and take its lock for this process (held while the returned file
    stays open); GpuHpiError naming the other run if one holds it."""
    from .errors import DataError

    problem = _writable_problem(run_dir)
    if problem:
        raise DataError(problem)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = open(run_dir / ".gpu_hpi.lock", "a+")  # noqa: SIM115 (held until the run ends)
    except OSError as exc:
        raise DataError(f"cannot write the output directory {run_dir}: {exc.strerror}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock.seek(0)
        other = lock.read().strip() or "unknown"
        lock.close()
        raise DataError(
            f"the output directory {run_dir} is in use by another run (pid {other}); "
            "wait for it or choose another hydra.run.dir"
        ) from exc
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


_reads: Any = None  # the reads a sweep's jobs share (-m: Hydra runs them one after another here)


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
    try:
        if command_line:
            from .app.preflight import check_input, check_outputs, uses_device_arrays

            check_outputs(cfg, out_dir)
            check_input(cfg.data)
            if option_name(cfg.backend.name) != "cpu":
                warmup.start(arrays=uses_device_arrays(cfg))
        from .app.pipeline import run  # imported here so that config errors never pay for numpy/pyarrow

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
    _print_summary(summary, out_dir)


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
        if any(a.startswith("-") or a.lstrip("+~").startswith("hydra.mode") for a in args):
            # Hydra's own flags (--cfg job, -m) and a mode of one's own: Hydra's entry point
            sys.argv = [sys.argv[0], f"--config-dir={config_dir()}", *args]
            with stops.interrupting_queries():
                _app()
            return
        _run(args)
    except KeyboardInterrupt:
        print("gpu_hpi: interrupted; no output was committed unless summary.json is there", file=sys.stderr)
        sys.exit(130)
    except Stopped:
        print("gpu_hpi: stopped (SIGTERM); no output was committed unless summary.json is there", file=sys.stderr)
        sys.exit(143)


def _run(args: list[str]) -> None:
    """Run the job of these overrides as Hydra's entry point runs it, from one composition, in its
    run directory, owned (locked) by this process until the run ends."""
    from hydra._internal.utils import run_and_report
    from hydra.core.global_hydra import GlobalHydra

    overrides = [*args, "hydra.mode=RUN"]  # as Hydra's entry point adds it to a run's overrides
    application = _application()
    try:
        problem, cfg = _compose(application, overrides)
        if problem or cfg is None:
            _fail(problem or "the configuration does not compose")
        run_dir = Path(str(cfg.hydra.run.dir)).absolute()
        try:
            lock = own_run_dir(run_dir)
        except GpuHpiError as exc:
            _fail(str(exc))
        with read_write(cfg.hydra.run):  # resolved once: a ${now:...} would move on
            cfg.hydra.run.dir = str(run_dir).replace("${", "\\${")
        application.config_loader = _Composed(application.config_loader, overrides, cfg)
        try:
            with stops.interrupting_queries():
                run_and_report(lambda: application.run(config_name="config", task_function=_task, overrides=overrides))
        finally:  # the directory is free again: the lock file goes, then the lock
            Path(lock.name).unlink(missing_ok=True)
            lock.close()
    finally:
        GlobalHydra.instance().clear()


def _help(overrides: list[str]) -> None:
    from .usage import usage

    try:  # the overrides compose (a data.path may still be missing) or are refused in one line
        text = usage(config_dir(), overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        _fail(_one_line(exc))
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `gpu-hpi --help | head`: the rest goes nowhere, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _fail(message: str) -> NoReturn:
    print(f"gpu_hpi: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def cli() -> NoReturn:
    """`python -m gpu_hpi` and the `gpu-hpi` script: main(), then the end of the process without the
    interpreter's teardown (freeing the modules and objects of numpy, pandas, pyarrow, DuckDB and
    matplotlib took 0.25 s of a 5.6 s run, BENCHMARKS.md). By then every output is committed or
    none is; the streams and the log are flushed and the exit handlers (DuckDB's spill directory,
    Dask's) run first. main() itself returns, for callers in a process of their own."""
    import atexit

    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    cli()
