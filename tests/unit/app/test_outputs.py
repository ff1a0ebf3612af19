"""app/outputs.py: a run directory holds one run's complete set. A run that succeeds replaces the
earlier run's whole set (its files this run did not write go; other files and the run's own inputs
stay); a refused run leaves the earlier set as it was, .hydra/ included. Each file a run writes is
one that the check of outputs over inputs knows (app/preflight.run_outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import compose_config, run_app, run_cli

from gpu_hpi.app.preflight import run_outputs


def test_a_rerun_replaces_the_whole_earlier_set(tmp_path: Path) -> None:
    extra = ["output.plot_regions=true", "diagnostics.vintages=true", "output.cells=true"]
    first = run_app(tmp_path, "data.n_pairs=20000", *extra, plot=True).ok()
    assert {"regions.png", "vintages.parquet", "cells.parquet"} <= set(first.summary["outputs"])
    assert set(first.summary["outputs"]) <= set(run_outputs(compose_config("data.n_pairs=20000", *extra)))
    (first.dir / "notes.txt").write_text("mine")  # not a gpu_hpi output: never touched
    second = run_app(tmp_path, "data.n_pairs=20000", "output.csv=false").ok()
    names = {p.name for p in second.dir.iterdir() if not p.name.startswith(".")}
    assert names == {*second.summary["outputs"], "notes.txt"}
    assert not {"regions.png", "vintages.parquet", "cells.parquet", "index.csv", "index.png"} & names


def test_a_refused_rerun_leaves_the_earlier_set_and_its_configuration(tmp_path: Path) -> None:
    first = run_cli(tmp_path, "data.n_pairs=20000", name="run").ok()
    before = {p.name: p.read_bytes() for p in first.dir.iterdir() if p.is_file() and p.suffix != ".log"}
    config = (first.dir / ".hydra" / "config.yaml").read_text()
    assert "n_pairs: 20000" in config and not (first.dir / ".hydra.next").exists()
    refused = run_cli(tmp_path, "data=pairs", f"data.path={tmp_path / 'missing.parquet'}", name="run")
    assert refused.rc == 2 and "no such file" in refused.stderr
    after = {p.name: p.read_bytes() for p in first.dir.iterdir() if p.is_file() and p.suffix != ".log"}
    assert after == before and (first.dir / ".hydra" / "config.yaml").read_text() == config
    assert json.loads((first.dir / "summary.json").read_text())["n_pairs_read"] == 20000


def test_unidentified_values_are_listed_in_a_file_the_warning_names(tmp_path: Path) -> None:
    """Index values left empty are listed (group, period, reason) in unidentified.csv, which the
    warning names with summary.json's count; a later run without any leaves no stale list."""
    import pandas as pd

    options = ("data.n_pairs=3000", "index.min_pairs=1", "diagnostics.revision=false")
    thin = run_app(tmp_path, *options).ok()
    # a name that the check of outputs over inputs knows (app/preflight.py)
    assert set(thin.summary["outputs"]) <= set(run_outputs(compose_config(*options, "output.plot=false")))
    listed = pd.read_csv(thin.dir / "unidentified.csv", dtype=str)
    index = thin.csv
    empty = index[index["log_index"].isna()]
    assert list(listed.columns) == ["group", "period", "reason"] and len(listed) > 0
    got = sorted(zip(listed["group"], listed["period"], strict=True))
    assert got == sorted(zip(empty["group"], empty["period"], strict=True))
    assert set(listed["reason"]) <= {"no pairs", "not connected to the base period"}
    assert thin.summary["n_unidentified"] == len(listed) and "unidentified.csv" in thin.summary["outputs"]
    warned = [line for line in thin.stderr.splitlines() if "not identified" in line]
    assert warned == [
        f"gpu_hpi: warning: {len(listed):,} (group, period) index values are not identified and left empty (NaN) "
        f"in the index (in {listed['group'].nunique()} group(s)): their group, period and reason are in "
        f"{thin.dir / 'unidentified.csv'} (summary.json: n_unidentified)"
    ], thin.stderr
    full = run_app(tmp_path, "data.n_pairs=60000", "diagnostics.revision=false").ok()
    assert full.summary["n_unidentified"] == 0 and not (full.dir / "unidentified.csv").exists()
    assert "not identified" not in full.stderr


def test_a_signal_handed_to_another_thread_during_the_commit_waits_for_the_whole_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel may hand a SIGTERM to any thread (BLAS's, DuckDB's); Python then runs the handler
    in the main thread, whose own mask does not stop it. Sent from another thread in the middle of
    the renames, it stops the run only once the set is complete."""
    import os
    import signal
    import threading

    from gpu_hpi.app import outputs, pipeline
    from gpu_hpi.errors import Stopped, clear_stops, request_stop

    rename = outputs.os.replace
    renamed: list[str] = []

    def replace(src: object, dst: object) -> None:
        rename(src, dst)
        renamed.append(str(dst))
        if len(renamed) == 1:  # after the first rename: a SIGTERM from another thread, handled now
            thread = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
            thread.start()
            thread.join()
            signal.pthread_sigmask(signal.SIG_SETMASK, set())  # as in a thread the kernel chose
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    monkeypatch.setattr(outputs.os, "replace", replace)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: request_stop(signum))
    try:
        with pytest.raises(Stopped):
            pipeline.run(compose_config("data.n_pairs=3000", "index.min_pairs=1", "output.plot=false"), tmp_path)
    finally:
        signal.signal(signal.SIGTERM, previous)
        clear_stops()
    assert len(renamed) > 1 and renamed[-1].endswith("summary.json")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert all((tmp_path / name).exists() for name in summary["outputs"])


def test_a_directory_where_an_output_goes_is_refused_before_the_read(tmp_path: Path) -> None:
    """The rename of the commit failed over it, half-way: a traceback, the earlier summary.json
    beside a mixed set."""
    first = run_app(tmp_path, "data.n_pairs=3000", "output.cells=true").ok()
    before = (first.dir / "summary.json").read_text()
    (first.dir / "index.png").mkdir()
    again = run_app(tmp_path, "data.n_pairs=3000", plot=True)
    said = f"{first.dir / 'index.png'} is a directory where the run writes its index.png; move it away"
    assert again.rc == 2 and again.stderr == f"gpu_hpi: error: {said}\n"
    assert (first.dir / "summary.json").read_text() == before and (first.dir / "cells.parquet").exists()


@pytest.mark.parametrize("failing", ["a rename", "the earlier summary"])
def test_a_commit_that_fails_is_one_line_and_marks_no_mixed_set_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """An OS error during the renames (a disk gone read-only, an immutable file): one line, exit 2,
    no temporary file; the earlier summary.json is removed before anything is renamed, so either it
    and its set are as they were, or no set is marked complete (it stood beside a mixed set)."""
    from gpu_hpi.app import outputs

    first = run_app(tmp_path, "data.n_pairs=3000", "output.cells=true").ok()
    before = (first.dir / "summary.json").read_text()
    if failing == "a rename":
        rename, calls = outputs.os.replace, []

        def replace(src: object, dst: object) -> None:
            calls.append(dst)
            if len(calls) == 2:
                raise OSError(30, "Read-only file system")
            rename(src, dst)

        monkeypatch.setattr(outputs.os, "replace", replace)
    else:
        unlink = Path.unlink

        def refuse(self: Path, missing_ok: bool = False) -> None:
            if self.name == "summary.json":
                raise PermissionError(1, "Operation not permitted")
            unlink(self, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", refuse)
    again = run_app(tmp_path, "data.n_pairs=3000", "data.seed=9")
    assert again.rc == 2 and again.stderr.startswith(f"gpu_hpi: error: cannot commit the outputs in {first.dir}")
    assert again.stderr.count("\n") == 1 and not list(first.dir.glob(".*.tmp"))
    if failing == "a rename":
        assert again.stderr.endswith("no complete set is there\n") and not (first.dir / "summary.json").exists()
    else:
        assert again.stderr.endswith("the earlier set is as it was\n")
        assert (first.dir / "summary.json").read_text() == before and (first.dir / "cells.parquet").exists()


def test_signals_during_the_clean_up_and_the_commit_are_held_until_it_ends() -> None:
    """A second Ctrl-C while the temporary files of a stopped run are removed cut the removal
    short (files left); inside, a signal is recorded and raised after."""
    import os
    import signal

    from gpu_hpi.app.outputs import _signals_held
    from gpu_hpi.errors import clear_stops, raise_stop

    done = []
    try:
        with _signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            done.append(True)  # reached: the signal did not raise here
        with pytest.raises(KeyboardInterrupt):
            raise_stop()
    finally:
        clear_stops()
    assert done == [True]
