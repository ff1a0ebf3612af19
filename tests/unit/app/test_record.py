"""app/record.py: summary.json's run record (the inputs' fingerprints, the versions, the device,
the command line, the composed configuration), from which the run is made again."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from helpers import run_app, run_cli, seed_pairs

from gpu_hpi.app.record import fingerprint


def test_the_record_reruns_to_the_same_index(tmp_path: Path) -> None:
    first = run_cli(tmp_path, "data.n_pairs=20000", "method=case_shiller", name="first").ok()
    record = first.summary["run"]
    assert record["command_line"] == ["data.n_pairs=20000", "method=case_shiller", "output.plot=false"]
    assert record["config"]["method"]["name"] == "case_shiller" and record["config"]["data"]["n_pairs"] == 20000
    assert record["versions"]["numpy"] and record["versions"]["python"] and record["device"].startswith("CPU")
    again = run_cli(tmp_path, *record["command_line"], name="again").ok()
    pd.testing.assert_frame_equal(
        pd.read_parquet(again.dir / "index.parquet"), pd.read_parquet(first.dir / "index.parquet"), check_exact=True
    )


def test_inputs_are_fingerprinted(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    pq.write_table(seed_pairs(3000, 4), path, row_group_size=1000)
    run = run_app(tmp_path, "data=pairs", f"data.path={path}").ok()
    (recorded,) = run.summary["run"]["inputs"]
    assert recorded == fingerprint(str(path)) and recorded["rows"] == 3000 and recorded["of"] == "parquet footer"
    assert run.summary["run"]["command_line"] is None  # a call in-process, not the command line
    pq.write_table(seed_pairs(3000, 5), path, row_group_size=1000)  # other data, same size and name
    assert fingerprint(str(path))["sha256"] != recorded["sha256"]
    csv = tmp_path / "pairs.csv"
    csv.write_text("a,b\n1,2\n")
    assert fingerprint(str(csv))["of"] == "whole file" and fingerprint(str(csv))["rows"] is None
