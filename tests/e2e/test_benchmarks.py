"""Smoke tests of the benchmark suite and of the GPU check at tiny sizes: they run and print their tables
(times not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # every benchmark case, each in a process of its own
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
        "normal,lsqr,lsmr_matrix,seed_loop,dense_lstsq,transactions,cells,revision,revision_refits,diagnostics,regions,duckdb_pairs,sales_sql,duckdb_sales",
        "--seed-size",
        "2K",
        "--dense-size",
        "5K",
        "--json",
        str(out),
        "--fork",  # each case forked from one process: the cases' code, without 14 start-ups
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    table = json.loads(out.read_text())
    rows = table["rows"]
    assert table["forked"] is True  # smoke figures, never recorded
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
    assert cases[11].startswith("diagnostics (first ")
    assert cases[12].startswith("10,000 regions (table ") and cases[13].startswith("DuckDB query (")
    assert cases[14].startswith("sales -> ") and cases[15].startswith("DuckDB pairing query (")
    # the array path and DuckDB's pair the same sales into as many pairs
    assert cases[7].split()[2] == cases[14].split()[2]
    assert all(r["seconds"] > 0 for r in rows)
    assert [r["n"] for r in rows if r["case"] == "seed_loop (extrapolated)"] == [68_000_000, 150_000_000]
    for case in cases:
        assert f"| {case}" in proc.stdout


GPU_CHECK_FILES = [
    "check.log",
    "importtime.txt",
    "kernels.txt",
    "profile.txt",
    "pytest-gpu.txt",
    "runs.tar.gz",
    "targets.json",
    "targets.md",
]


@pytest.mark.slow  # every row of the GPU check, each run in its own process
def test_gpu_check_dry_run(tmp_path: Path) -> None:
    """benchmarks/gpu_check.sh as on the GPU machine, on the CPU at 1/1000 of the sizes, without
    the GPU tests and with its plain runs forked from one process (--fork: 12-14 s, not 34-40): every
    row is measured, the table is printed last, and OUT holds the 8 files the machine sends back (at
    most 8, 16 MiB each, no folder)."""
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "GPU_CHECK_WORK": str(tmp_path / "work"),
        "GPU_CHECK_ARGS": "--scale 0.001 --backend cpu --fork",
        "GPU_CHECK_TESTS": "0",
    }
    cmd = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert sorted(p.name for p in out.iterdir()) == GPU_CHECK_FILES
    assert all(p.is_file() and p.stat().st_size < 16 << 20 for p in out.iterdir())
    rows = json.loads((out / "targets.json").read_text())
    errors = [(r["case"], r["measured"]) for r in rows if r["measured"].startswith(("error", "not run"))]
    assert not errors
    # measured, PASS or FAIL, but the device's memory, which a CPU run has not
    assert [r["case"] for r in rows if r["ok"] is None] == ["same: peak device memory (summary.json)"]
    assert len(rows) == 22 and rows[-1]["case"].startswith("benchmarks/gpu_check.sh on this machine")
    table = (out / "targets.md").read_text().strip().splitlines()
    printed = proc.stdout.rstrip().splitlines()
    assert len(table) == len(rows) + 2 and printed[-len(table) - 1 : -1] == table  # the table last
    assert printed[-1].startswith("== done in ")
    assert "cudf modules: none" in (out / "importtime.txt").read_text()
    assert "cumulative" in (out / "profile.txt").read_text()
    # on the CPU, a "GPU" run's command is its CPU twin's: run once
    assert "run x8-cpu: the command of x8-gpu, run once" in proc.stdout
    assert "0 files added to an empty CUPY_CACHE_DIR" in (out / "kernels.txt").read_text()
    assert (out / "check.log").read_text().rstrip().splitlines()[-1] == printed[-1]
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"prepare.log", "runs/pairs-gpu/summary.json", "runs/pairs-gpu.log", "runs/profile.pstats"} <= names
    assert not [n for n in names if n.endswith((".csv", ".parquet", ".png"))]


def test_gpu_targets_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the check reads from its runs: -X importtime lines, the kernels of a cached cubin, and a
    speed-up whose CPU run the time budget stopped (a lower bound: PASS if it reaches the target)."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import gpu_targets as gt

    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       120 |        120 |   _io",
            "import time:      2000 |      53000 | cudf",
            "import time:      1000 |      51000 |   cudf.core",
            "import time:       300 |        300 |     pylibcudf",
            "gpu_hpi: something else on stderr",
        ]
    )
    table = gt.importtime_table(stderr)
    assert [(depth, name) for _, _, depth, name in table] == [
        (1, "_io"),
        (0, "cudf"),
        (1, "cudf.core"),
        (2, "pylibcudf"),
    ]
    assert gt.modules_of(table, "cudf") == ["cudf", "cudf.core"] and table[1][:2] == (2000, 53000)
    assert gt.modules_of(table, "cupy") == []

    cubin = tmp_path / "0123.cubin"
    cubin.write_bytes(b"0" * 40 + b"\x7fELF\0.text.cupy_add__float64\0.text._Z4foldPdi\0.nv.info\0")
    assert gt.kernel_names(cubin) == ["_Z4foldPdi", "cupy_add__float64"]

    # a forked run is the command line's: its exit code and its one line on stderr
    refused = gt.forked_cli(["method=nosuch"], dict(os.environ), 60.0)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("gpu_hpi: error: ") and "nosuch" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    info = {"groups": {"method": "robust", "iterations": 10}, "pooled": {"iterations": 11}}
    assert gt.solver_steps(gt.Run("r", 1.0, {"solver_info": info}, tmp_path)) == 23  # and the OLS fits

    check = gt.Check(tmp_path, tmp_path, gt.Data(tmp_path, gt.Sizes(0.001)), "gpu", 300.0)
    summary = {"timings_s": {"startup": 1.0}}
    check.runs["a-gpu"] = gt.Run("a-gpu", 2.0, summary, tmp_path)
    check.stopped["a-cpu"], check.stopped_walls["a-cpu"] = "a-cpu stopped after 12 s", 12.0
    assert check.speedup("a-gpu", "a-cpu", 5.0, lambda g, c: "")[1] is True  # at least 6x
    assert check.speedup("a-gpu", "a-cpu", 8.0, lambda g, c: "")[1] is None  # at least 6x: not known
    check.stopped.clear()
    check.stopped_walls.clear()
    check.runs["a-cpu"] = gt.Run("a-cpu", 7.0, summary, tmp_path)
    assert check.speedup("a-gpu", "a-cpu", 3.0, lambda g, c: "")[0] == "GPU 2.00 s, CPU 7.00 s: 3.5x"


def test_a_forked_run_has_its_own_exit_handlers_and_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/forked.py: the child runs its own exit handlers, never this process's (DuckDB's
    spill directory of this process would go), and exits as the interpreter would."""
    import atexit

    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.forked import run_forked

    assert atexit._ncallbacks() > 0  # this process's own (logging's, at least)

    def main() -> None:
        print(f"inherited {atexit._ncallbacks()}; argv {sys.argv[1:]}")
        atexit.register(print, "its own ran")
        raise SystemExit(sys.argv[1])

    run = run_forked(["child", "3"], main)
    assert (run.returncode, run.stdout, run.stderr) == (1, "inherited 0; argv ['3']\nits own ran\n", "3\n")
    alone = run_forked(["child"], lambda: print(dict(os.environ)), env={"ONLY": "this"})
    assert (alone.returncode, alone.stdout, alone.stderr) == (0, "{'ONLY': 'this'}\n", "")
