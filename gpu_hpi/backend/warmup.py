"""What a GPU run waits for before its first read, started in a thread while the command line imports
the run's modules: CuPy's import, the CUDA context (driver work done without the GIL: 0.6 s on an
H200) and the device reader's import (pylibcudf, 0.3 s). Nothing is
allocated on the device, so the memory pool set up afterwards still serves every allocation. (A first
read of a few rows of the input was tried here too, to load libcudf's reader early: the thread then
outlasted the imports, and the set-up waited 0.6-0.75 s for it on an H200.) On a
machine without a GPU the thread finds no CuPy or no device and ends; the backend reports why.
Imports nothing heavy itself: a configuration error never waits for it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading

_thread: threading.Thread | None = None


def start() -> None:
    """Start the warm-up (once per process)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_warm_up, name="gpu_hpi-warm-up", daemon=True)
        _thread.start()


def wait() -> None:
    """Wait for a started warm-up to finish (nothing to wait for where none was started)."""
    if _thread is not None:
        _thread.join()


def _warm_up() -> None:
    try:
        import cupy

        cupy.cuda.runtime.free(0)  # creates the context; allocates nothing
    except Exception:  # no CuPy, no driver or no device: a CPU run, or an error the backend reports
        return
    if os.environ.get("GPU_HPI_CUDF", "1") != "0":
        with contextlib.suppress(Exception):  # without it the host reader is used (io.device.library)
            importlib.import_module("pylibcudf")  # io.device imports it by this name
