"""How the command line stops on SIGINT / SIGTERM: the handler records the stop and raises where
the run is (errors.request_stop); a watcher thread interrupts DuckDB's running queries at once; a
stop raised inside a finaliser, which Python prints and drops, stays silent (it was recorded and
is raised again at the next stage or before the commit)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from .errors import Stopped, request_stop


def on_signal(signum: int, frame: Any) -> None:
    request_stop(signum)


@contextlib.contextmanager
def interrupting_queries() -> Iterator[None]:
    """A SIGINT / SIGTERM interrupts DuckDB's running queries at once. Python runs on_signal only
    when DuckDB looks for signals, seconds apart on a large scan; the interpreter writes the
    signal's number to its wakeup fd as the signal arrives, which wakes a thread that interrupts
    them (the query raises, and run_job turns that into the stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    watcher = threading.Thread(target=_interrupt_on_signal, args=(read,), name="gpu_hpi signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.write(write, b"\0")  # no signal's number: the watcher returns
        watcher.join()
        os.close(write)
        os.close(read)


def _interrupt_on_signal(fd: int) -> None:
    # not a thread for the kernel to deliver the signals to: where the main thread blocks them
    # (outputs.py's commit), they must wait
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    while True:
        received = set(os.read(fd, 64))
        sql = sys.modules.get(f"{__package__}.io.sql")  # nothing to interrupt before DuckDB is imported
        if sql is not None and {signal.SIGINT, signal.SIGTERM} & received:
            sql.interrupt_queries()
        if not received or 0 in received:
            return


def unraisable(unraisable: Any) -> None:
    """A stop raised inside a finaliser or callback, where Python prints and drops it: silent, as
    it was recorded and is raised again at the next stage or before the commit."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt | Stopped):
        sys.__unraisablehook__(unraisable)
