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
