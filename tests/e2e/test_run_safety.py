"""Runs that cannot corrupt each other: the run directory's lock, its check before any
work, SIGINT / SIGTERM stopping with one line and no temporary file, outputs committed as a set."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import main_in_process

from gpu_hpi import __main__ as cli
from gpu_hpi import stops
from gpu_hpi.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def run_main(*args: str) -> tuple[int, str]:
    """gpu_hpi's main() in this process: (exit code, stderr)."""
    code, _out, err = main_in_process(list(args), Path.cwd())
    return code, err


def test_a_second_run_into_a_held_directory_exits_2_naming_the_first(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    # the first run: another process holding the directory
    with subprocess.Popen(  # the context closes its pipe: no unclosed file for a later test to see
        [sys.executable, "-c", HOLD, str(run_dir)], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
            code, err = run_main(f"hydra.run.dir={run_dir}", "data.n_pairs=2000")
        finally:
            holder.kill()
    assert code == 2
    assert err.strip() == (
        f"gpu_hpi: error: the output directory {run_dir} is in use by another run (pid {holder.pid}); "
        "wait for it or choose another hydra.run.dir"
    )
    assert sorted(p.name for p in run_dir.iterdir()) == [".gpu_hpi.lock"]  # the first run's: Hydra wrote nothing
    # released (the holder is gone): the next run takes the directory
    code, _ = run_main(f"hydra.run.dir={run_dir}", "data.n_pairs=2000", "output.plot=false")
    assert code == 0 and (run_dir / "summary.json").exists()
    assert not (run_dir / ".gpu_hpi.lock").exists()  # released with the run


HOLD = """
import sys, time
from pathlib import Path
from gpu_hpi.app.command import own_run_dir
lock = own_run_dir(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


def test_an_unwritable_output_directory_is_one_line_before_any_work(
    tmp_path: Path,
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for run_dir, why in ((a_file, "is a file"), (a_file / "sub", "cannot write")):
        code, err = run_main(f"hydra.run.dir={run_dir}")
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1


def test_a_read_only_parent_is_refused(tmp_path: Path) -> None:
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        with pytest.raises(DataError, match="not writable"):
            cli.own_run_dir(read_only / "run")
    finally:
        read_only.chmod(0o700)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "stopped")]
)
def test_a_signal_stops_the_run_with_one_line_and_no_temporary_file(
    tmp_path: Path, sig: signal.Signals, code: int, word: str
) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpu_hpi", f"hydra.run.dir={run_dir}", "data.n_pairs=60000000"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (run_dir / "gpu_hpi.log").exists() and time.monotonic() < deadline:  # the run has begun
        time.sleep(0.1)
    time.sleep(0.3)  # into the synthetic market's 60M pairs (seconds)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code
    assert len(err.strip().splitlines()) == 1 and word in err and "Traceback" not in err
    left = {p.name for p in run_dir.iterdir()}
    assert not any(name.endswith(".tmp") for name in left)
    assert "summary.json" not in left and "index.csv" not in left


def test_a_signal_whose_exception_was_swallowed_still_stops_the_commit(tmp_path: Path) -> None:
    """A KeyboardInterrupt raised while Python runs a finaliser is printed and dropped; the recorded
    signal is raised again at the next stage and before the outputs are committed: none is, and no
    temporary file stays."""
    from helpers import compose_config

    from gpu_hpi.app import pipeline
    from gpu_hpi.errors import clear_stops, request_stop

    cfg = compose_config("data.n_pairs=20000", "backend=cpu", "output.plot=false")
    with contextlib.suppress(KeyboardInterrupt):  # as a finaliser would drop it
        request_stop(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.run(cfg, tmp_path / "out")
    finally:
        clear_stops()
    out = tmp_path / "out"
    assert not (out.exists() and list(out.iterdir()))  # stopped at the next stage, or before the commit
    assert (pipeline.run(cfg, tmp_path / "again")["n_pairs_used"]) == 20000  # cleared: the next run commits


def test_a_stop_dropped_inside_a_finaliser_is_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """Python prints an exception a finaliser raises; a stop was recorded and is raised again later,
    so the CLI's hook keeps the one-line promise by printing nothing for it."""
    import types

    from gpu_hpi.errors import Stopped

    for stop in (KeyboardInterrupt(), Stopped()):
        stops.unraisable(types.SimpleNamespace(exc_value=stop))
    assert capsys.readouterr().err == ""
