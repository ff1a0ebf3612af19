"""A stop (SIGINT, SIGTERM) on the paths where a library does the work: during a DuckDB query (the
CPU's reader of parquet files) and under a local Dask cluster, with Ctrl-C reaching every process
of the terminal's group. Each ends with one line and exit 130 / 143, writes nothing, and leaves no
process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpu_hpi.errors import Stopped

REPO = Path(__file__).resolve().parents[2]
STOPS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "stopped (SIGTERM)")]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8M pairs (a block of 100,000 repeated) in row groups of 500,000: DuckDB's query over them
    takes about a second on two cores, and so does each of two 4M-pair partitions on a local
    cluster's worker."""
    rng = np.random.default_rng(3)
    block, reps = 100_000, 80
    prev = rng.integers(0, 100, block)
    month = np.datetime64("2010-01", "M")
    part = pa.table(
        {
            "group_id": rng.integers(0, 50, block),
            "PrevYearMonth": (month + prev).astype("datetime64[ms]"),
            "RecentYearMonth": (month + prev + rng.integers(1, 20, block)).astype("datetime64[ms]"),
            "LogPriceDiff": rng.normal(0, 0.1, block),
        }
    )
    table = pa.concat_tables([part] * reps)  # the block repeated without copying it
    path = tmp_path_factory.mktemp("stops") / "pairs.parquet"
    pq.write_table(table, path, row_group_size=500_000)
    return path


class Run:
    """`python -m gpu_hpi` in a session of its own (its process group, as a terminal's job), its
    output read as it comes."""

    def __init__(self, run_dir: Path, *overrides: str, cores: int | None = None) -> None:
        self.dir = run_dir
        mine = sorted(os.sched_getaffinity(0))[: cores or None]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpu_hpi", f"hydra.run.dir={run_dir}", "output.plot=false", *overrides],
            cwd=run_dir.parent,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        os.sched_setaffinity(self.proc.pid, mine)  # before the interpreter starts any thread
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=_collect, args=(self.proc.stdout, self.out)),
            threading.Thread(target=_collect, args=(self.proc.stderr, self.err)),
        ]
        for reader in self.readers:
            reader.start()

    def wait_for(self, text: str, timeout: float = 90) -> None:
        """Until the run logs `text` (in its log file, gpu_hpi.log)."""
        deadline = time.monotonic() + timeout
        log = self.dir / "gpu_hpi.log"
        while not (log.exists() and text in log.read_text()):
            assert self.proc.poll() is None and time.monotonic() < deadline, "".join(self.out + self.err)
            time.sleep(0.02)

    def stop(self, sig: int, group: bool = False) -> None:
        """Send the signal (to the whole group: a terminal's Ctrl-C) and wait for the end."""
        assert self.proc.poll() is None, "the run ended before the signal: " + "".join(self.out)
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        for reader in self.readers:
            reader.join()

    def assert_stopped(self, code: int, word: str) -> None:
        """Exit `code`, one line on stderr, nothing on stdout (INFO lines go to the log file), no output
        file or temporary one, and no process of the run's group left (Dask's workers)."""
        err, out = "".join(self.err), "".join(self.out)
        assert self.proc.returncode == code, out + err
        assert err.strip() == f"gpu_hpi: {word}; no output was committed unless summary.json is there", err
        assert not out.strip(), out
        left = {p.name for p in self.dir.iterdir()}
        assert not left & {"summary.json", "index.csv", "index.parquet"}, left
        assert not any(name.endswith(".tmp") for name in left), left
        deadline = time.monotonic() + 10
        while _group_alive(self.proc.pid):
            assert time.monotonic() < deadline, "processes of the run are left"
            time.sleep(0.1)


def _collect(stream: Any, lines: list[str]) -> None:
    with stream:  # closed at its end: no unclosed pipe for a later test to see
        lines.extend(stream)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. One that has ended is not, though it is listed
    until reaped: a child that outlives the run by a moment (multiprocessing's resource tracker
    ends when the run does) is left to the machine's init, which may reap it seconds later."""
    return any(pgrp == pgid and state != "Z" for _, state, _, pgrp in _processes())


def _processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of each process, from /proc/PID/stat."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while looking
            continue
        found.append((int(entry.name), fields[0], int(fields[1]), int(fields[2])))
    return found


@pytest.mark.parametrize(("sig", "code", "word"), STOPS)
def test_a_stop_during_a_duckdb_query_is_one_line(
    pairs_file: Path, tmp_path: Path, sig: int, code: int, word: str
) -> None:
    """The query is interrupted, and the error DuckDB raises for it is the stop (that it is
    interrupted as the signal comes: test_a_signal_interrupts_a_running_duckdb_query_at_once)."""
    # one core: DuckDB's query of the 8M pairs takes ~0.5 s on one thread, the signal comes 0.05 s in
    run = Run(tmp_path / "run", "data=pairs", f"data.path={pairs_file}", "diagnostics.revision=false", cores=1)
    run.wait_for("the cell table's query")
    time.sleep(0.05)
    run.stop(sig)
    run.assert_stopped(code, word)


@pytest.mark.parametrize(("sig", "code", "word", "group"), [(*STOPS[0], True), (*STOPS[1], False)])
def test_a_stop_under_a_local_cluster_is_one_line_and_closes_it(
    pairs_file: Path, tmp_path: Path, sig: int, code: int, word: str, group: bool
) -> None:
    """Ctrl-C reaches the workers too (they ignore it; the run closes them), SIGTERM the run only;
    neither the cluster's closing nor its workers say a word."""
    run = Run(
        tmp_path / "run",
        "data=pairs",
        f"data.path={pairs_file}",
        "data.batch_rows=4000000",
        "diagnostics.revision=false",
        "cluster=local",
        "cluster.n_workers=1",  # one worker process is enough to be told, or not, and closed
    )
    run.wait_for("reader dask")
    _wait_for_workers_reading(run.proc, pairs_file)  # a task under way
    run.stop(sig, group=group)
    run.assert_stopped(code, word)


def _wait_for_workers_reading(proc: subprocess.Popen[str], path: Path, timeout: float = 60) -> None:
    """Until one of the Dask worker processes (multiprocessing's spawned children of the run) has
    `path` open: it is in a task."""
    deadline = time.monotonic() + timeout
    while not any(_has_open(child, path) for child in _spawned_children(proc.pid)):
        assert proc.poll() is None, "the run ended before its workers were seen reading"
        assert time.monotonic() < deadline, "the workers did not start reading"
        time.sleep(0.01)


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # a descriptor closed while looking
        return False


def _spawned_children(pid: int) -> list[int]:
    return [child for child, _, parent, _ in _processes() if parent == pid and b"spawn_main" in _cmdline(child)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended while looking
        return b""


def test_a_signal_interrupts_a_running_duckdb_query_at_once() -> None:
    """The command line's watcher interrupts DuckDB's running query as a signal arrives: here the
    signal's handler only records it (DuckDB, looking for signals itself, would run on), and a
    query of tens of seconds ends at once."""
    import duckdb

    from gpu_hpi import stops
    from gpu_hpi.io.sql import connect

    received: list[int] = []

    def record(signum: int, frame: Any) -> None:
        received.append(signum)

    con = connect()
    minutes = "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b"
    previous = signal.signal(signal.SIGTERM, record)
    sender = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    fallback = threading.Timer(60, con.interrupt)  # never hang the suite
    try:
        with stops.interrupting_queries():
            sender.start()
            fallback.start()
            started = time.monotonic()
            with pytest.raises((duckdb.Error, RuntimeError), match="nterrupt"):
                con.execute(minutes).fetchall()
            took = time.monotonic() - started
    finally:
        for timer in (sender, fallback):
            timer.cancel()
            if timer.is_alive():
                timer.join()
        signal.signal(signal.SIGTERM, previous)  # after the sender: never SIGTERM to this process's default
    assert received == [signal.SIGTERM]
    assert took < 5, took
    assert con.execute("SELECT 42").fetchall() == [(42,)]  # the connection still works


@pytest.mark.parametrize(("sig", "stop"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Stopped)])
def test_a_librarys_error_after_a_stop_is_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: int, stop: type[BaseException]
) -> None:
    """DuckDB runs the signal's handler itself where it looks for signals, drops the stop it raises
    and raises "Query interrupted" (or an error a reader turns into a one-line refusal): after a
    recorded stop, either error is the stop. Without one, the refusal is exit 2."""
    import contextlib

    from helpers import compose_config

    from gpu_hpi import __main__ as cli
    from gpu_hpi.app import pipeline
    from gpu_hpi.errors import DataError, clear_stops, request_stop

    cfg = compose_config("data.n_pairs=2000", "output.plot=false")
    for error, stopped in (
        (RuntimeError("Query interrupted"), True),
        (DataError("cannot read x.parquet: Query interrupted"), True),
        (DataError("cannot read x.parquet"), False),
    ):

        def failing(*args: Any, error: Exception = error, stopped: bool = stopped, **kwargs: Any) -> None:
            if stopped:
                with contextlib.suppress(KeyboardInterrupt, Stopped):  # as DuckDB drops it
                    request_stop(sig)
            raise error

        monkeypatch.setattr(pipeline, "run", failing)
        try:
            with pytest.raises(stop if stopped else SystemExit) as raised:
                cli.run_job(cfg, tmp_path / "out")
        finally:
            clear_stops()
        assert stopped or raised.value.code == 2
