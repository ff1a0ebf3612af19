"""A command run by its main() in a child forked from this process, for smoke runs of the
benchmarks and dry runs of the GPU check, on the CPU only (a process that has started CUDA cannot
fork it): the child has this process's imports, so it pays no interpreter start-up and no imports
(~0.5-0.7 s a run). Measurements start each run afresh."""

from __future__ import annotations

import atexit
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from gpu_hpi.__main__ import exit_status

# what runs and cases import when a stage starts (DuckDB, matplotlib, Arrow's readers, the iterative
# solvers): imported by the parent once, not by each child
LAZY_IMPORTS = (
    "gpu_hpi.app.pipeline",
    "gpu_hpi.app.preflight",
    "gpu_hpi.charts",
    "gpu_hpi.io.sql",
    "duckdb",
    "matplotlib.backends.backend_agg",
    "pyarrow.dataset",
    "pyarrow.csv",
    "scipy.sparse.linalg",
    "threadpoolctl",
)


def import_lazy_modules() -> None:
    """LAZY_IMPORTS, imported in this process (before it forks children)."""
    import importlib

    for name in LAZY_IMPORTS:
        importlib.import_module(name)


def run_forked(
    argv: Sequence[str],
    main: Callable[[], object],
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """main() with sys.argv = argv (and os.environ = env) in a forked child: its exit code, stdout
    and stderr as subprocess.run(capture_output=True, text=True) gives them; TimeoutExpired (the
    child killed) past `timeout` seconds."""

    def text(file: Any) -> str:
        file.seek(0)
        return file.read().decode(errors="replace")

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        # this process's objects out of the collector's reach: a child's full passes would scan
        # them again and write to every page that holds one (copy-on-write)
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            _child(argv, main, env, out.fileno(), err.fileno())
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not (done := os.waitpid(pid, os.WNOHANG))[0]:
                if deadline is not None and time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(list(argv), timeout or 0.0, output=text(out), stderr=text(err))
                time.sleep(0.005)
        except BaseException:  # the deadline, or this process stopped: the child goes too
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        return subprocess.CompletedProcess(list(argv), os.waitstatus_to_exitcode(done[1]), text(out), text(err))


def _child(argv: Sequence[str], main: Callable[[], object], env: dict[str, str] | None, out: int, err: int) -> None:
    """The forked child: main()'s exit code is the process's, as the interpreter would give it, and
    its own exit handlers run (not the parent's, whose files they would remove)."""
    code = 1
    try:
        atexit._clear()
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (the child's own streams, not a capture's)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        sys.argv = list(argv)
        main()
        code = 0
    except SystemExit as exc:
        code = exit_status(exc)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
