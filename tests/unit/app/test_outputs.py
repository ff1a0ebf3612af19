"""app/outputs.py: a run directory holds one run's complete set. A run that succeeds replaces the
earlier run's whole set (its files this run did not write go; other files and the run's own inputs
stay); a refused run leaves the earlier set as it was, .hydra/ included."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_app, run_cli


def test_a_rerun_replaces_the_whole_earlier_set(tmp_path: Path) -> None:
    extra = ["output.plot_regions=true", "diagnostics.vintages=true", "output.cells=true"]
    first = run_app(tmp_path, "data.n_pairs=20000", *extra, plot=True).ok()
    assert {"regions.png", "vintages.parquet", "cells.parquet"} <= set(first.summary["outputs"])
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

    thin = run_app(tmp_path, "data.n_pairs=3000", "index.min_pairs=1", "diagnostics.revision=false").ok()
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
