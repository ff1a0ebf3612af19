"""What a GPU run waits for before its first read, started in a thread while the command line imports
the run's modules: the CUDA context (driver work done without the interpreter's lock: 0.6 s on an
H200), the device reader's import (pylibcudf, 0.3 s) and, where the run's arrays will be CuPy's,
CuPy's import (1.1 s, which holds the lock: a run that reduces a pair file to its cell table on the
device never imports it). Nothing is allocated on the device, so the memory pool set up afterwards
still serves every allocation. (A first read of a few rows of the input was tried here too, to load
libcudf's reader early: the thread then outlasted the imports, and the set-up waited 0.6-0.75 s for
it on an H200.) On a machine without a GPU the thread finds no device and ends; the backend reports
why. Imports nothing heavy itself: a configuration error never waits for it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading

_thread: threading.Thread | None = None


def start(arrays: bool = True) -> None:
    """Start the warm-up (once per process); arrays: the run will use CuPy's arrays."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_warm_up, args=(arrays,), name="gpu_hpi-warm-up", daemon=True)
        _thread.start()


def wait() -> None:
    """Wait for a started warm-up to finish (nothing to wait for where none was started)."""
    if _thread is not None:
        _thread.join()


def _warm_up(arrays: bool) -> None:
    from . import cuda

    try:
        cuda.create_context()
    except Exception:  # no driver or no device: a CPU run, or an error the backend reports
        return
    if os.environ.get("GPU_HPI_CUDF", "1") != "0":
        with contextlib.suppress(Exception):  # without it the host reader is used (io.device.library)
            _load("pylibcudf")  # io.device imports it by this name
    if arrays or os.environ.get("GPU_HPI_CUDF", "1") == "0":
        with contextlib.suppress(Exception):
            _load("cupy")  # not cuda.cupy_module: the memory pool is not set up yet


def _load(name: str) -> None:
    importlib.import_module(name)
