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
