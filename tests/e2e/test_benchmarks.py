"""Smoke test of the benchmark suite at tiny sizes: it runs and prints its table (times not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # every benchmark case, each in its own process
def test_benchmark_suite_runs(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "GPU_HPI_BENCH_DATA": str(tmp_path / "data"),
    }
    cmd = [
        sys.executable,
        "-m",
        "benchmarks",
        "--sizes",
        "20K",
        "--cases",
        "normal,lsqr,lsmr_matrix,seed_loop,dense_lstsq,transactions,cells,revision,revision_refits,regions,duckdb_pairs,sales_sql,duckdb_sales",
        "--seed-size",
        "2K",
        "--dense-size",
        "5K",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    cases = [r["case"] for r in rows]
    assert cases[0] == "normal"
    for case, name in zip(cases[1:3], ("lsqr", "lsmr_matrix"), strict=True):  # steps, distance from normal
        assert case.startswith(f"{name} (") and float(case.split(", ")[-1].split()[0]) <= 1e-10
    assert cases[3:7] == [
        "seed_loop",
        "seed_loop (extrapolated)",
        "seed_loop (extrapolated)",
        "dense_lstsq",
    ]
    assert cases[7].startswith("transactions -> ") and cases[8].startswith("cells.parquet load")
    assert cases[9].startswith("revision (") and cases[10] == "revision, refit per vintage"
    assert cases[11].startswith("10,000 regions (table ") and cases[12].startswith("DuckDB query (")
    assert cases[13].startswith("sales -> ") and cases[14].startswith("DuckDB pairing query (")
    # the array path and DuckDB's pair the same sales into as many pairs
    assert cases[7].split()[2] == cases[13].split()[2]
    assert all(r["seconds"] > 0 for r in rows)
    assert [r["n"] for r in rows if r["case"] == "seed_loop (extrapolated)"] == [68_000_000, 150_000_000]
    for case in cases:
        assert f"| {case}" in proc.stdout
