"""The GPU target rows, measured in one go, the GPU against the same machine's CPU, with PASS/FAIL.

    bash benchmarks/gpu_check.sh OUT                         # on the GPU machine: tests, data, rows, table
    python -m benchmarks.gpu_targets OUT --plan              # the steps and their estimated seconds
    python -m benchmarks.gpu_targets OUT --prepare           # the data, then kernel warm-ups on small files
    python -m benchmarks.gpu_targets OUT                     # the rows (data made first where missing)
    python -m benchmarks.gpu_targets OUT --scale 0.001 --backend cpu   # a dry run of the mechanics anywhere

Data are generated where the check runs (CuPy and cudf where they import, else numpy and pandas),
once, under WORK/data, and shared by the rows: 150M seed-schema pairs (17 regions); the same count
over 10,000 regions; 1/20 of them (the CPU side of the robust and accuracy-fold rows, and the GPU
warm-ups); 100M sale records, 10M, and 10M with nanoseconds stored as milliseconds. The 1B-pair
input is 8 hard links of the 150M-pair file: 1.2B pairs, read from the page cache like the others.

Every run is `python -m gpu_hpi` in a process of its own; the rows read its wall time and its
summary.json (timings_s, dropped, n_pairs_used, peak_device_bytes) and index.parquet. The warm GPU
runs use a kernel cache (CUPY_CACHE_DIR) filled by the warm-ups; the cold runs an empty one, whose
files afterwards are the kernels compiled. Where the CPU side of a comparison would not fit the
check's five minutes (method=robust and 10 accuracy folds: minutes on the CPU at 150M pairs), the
CPU runs the job on 1/20 of the pairs, and the same pairs with default options, and its wall at 150M
is estimated as its measured wall with default options at 150M plus 20 times what the option added
to the stages that grow with the pairs (the read keeping the pairs, the IRLS passes of the solve
stage, the folds in the diagnostics stage), less the fits of the 17-region tables in them (one per
IRLS step or fold, each costing what a fit costs the default run); the row says so. Passes over
7.5M pairs (0.24 GB of columns) are memory-bound as over 150M.

OUT receives targets.md, targets.json, importtime.txt (python -X importtime of the warm 150M GPU
run, top 25 by cumulative time), profile.txt (cProfile of that run, top 30 by cumulative time) and
kernels.txt (the cold runs' compiled kernels); --finish adds the row of gpu_check.sh's own total and
packs every run's log and summary.json into OUT/runs.tar.gz. A group of rows that cannot run fails
with the reason and the rest still run; a group whose estimate no longer fits the time budget is
left out, and its rows say so.
"""

from __future__ import annotations

import argparse
import atexit
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

T, GROUPS, REGIONS = 123, 17, 10_000
CPU_SHARE = 20  # robust and folds: the CPU side runs on 1/CPU_SHARE of the pairs, what the option adds scaled up
LINKS = 8  # the 1B-pair input: hard links of the 150M-pair file
SALES_FILTERS = ("data.max_holding=120", "data.max_annual_return=1.0", "data.max_robust_z=5")
BUDGET_S = 300.0  # gpu_check.sh on a fresh machine, data included
FINISH_S = 5.0  # kept for the table and the tar after the rows
# Seconds on an H200 and its 16-core host, estimated from the 2026-12-04 run (the code of then: cudf
# imported, kernels compiled on a fresh machine) and, for the runs it did not make, from the 2-core
# development machine scaled by the CPU rows both machines ran. The budget check scales them by
# how the runs so far compared with their estimates.
RUN_ESTIMATES_S = {
    "pairs-cold": 13.0,
    "pairs-gpu": 5.0,
    "pairs-cpu": 3.6,
    "profile": 7.0,
    "sales-cold": 11.0,
    "sales-warm": 3.5,
    "x8-gpu": 8.0,
    "x8-cpu": 12.0,
    "sales-gpu": 5.0,
    "sales-cpu": 19.0,
    "ns-as-ms-gpu": 5.0,
    "ns-as-ms-cpu": 1.2,
    "week-gpu": 14.0,
    "robust-gpu": 6.0,
    "robust-cpu": 19.0,
    "small-cpu": 2.0,
    "folds-gpu": 6.0,
    "folds-cpu": 5.0,
    "regions-gpu": 12.0,
    "regions-cpu": 35.0,
}
STEP_ESTIMATES_S = {"GPU tests": 84.0, "install check": 6.0, "table and tar": 3.0}
PREPARE_ESTIMATE_S = 50.0  # data (5.4 GB written) and 8 warm-up runs, beside the tests
QUIET = ("output.csv=false", "output.plot=false")  # warm-ups: the kernels, not the host's writers


@dataclass
class Row:
    issue: int
    case: str
    target: str
    measured: str = "-"
    ok: bool | None = None  # None: not measured

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "not run"}[self.ok]


# ---------------------------------------------------------------------------------------------- data


def _modules() -> tuple[Any, Any]:
    """(array module, DataFrame class): CuPy and cudf where they import, else numpy and pandas."""
    try:
        import cudf
        import cupy

        return cupy, cudf.DataFrame
    except ImportError:
        import pandas as pd

        return np, pd.DataFrame


def _write(frame: Any, path: Path, gpu: bool) -> Path:
    """frame as parquet at path (1M-row row groups), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if gpu:
        frame.to_parquet(tmp, index=False, row_group_size_rows=1 << 20)
    else:
        frame.to_parquet(tmp, index=False, row_group_size=1 << 20)
    tmp.rename(path)
    return path


def _free(xp: Any) -> None:
    if xp is not np:  # the generator's arrays are gone: give their memory back to the runs
        xp.get_default_memory_pool().free_all_blocks()


def seed_parquet(path: Path, n: int, seed: int, groups: int = GROUPS) -> Path:
    """n pairs in the seed's schema (int64 group_id, ns month timestamps, float64 LogPriceDiff),
    1M-row row groups: `groups` regions, 123 months from 2014-01, geometric holding (mean ~30
    months). Generated on the GPU with CuPy and written by cudf where they import, else numpy/pandas."""
    if path.exists():
        return path
    xp, frame_type = _modules()
    rng = xp.random.RandomState(seed)
    group = rng.randint(0, groups, n).astype(np.int64)
    prev = rng.randint(0, T - 1, n)
    recent = xp.minimum(prev + rng.geometric(1 / 30, n), T - 1)
    trend = xp.cumsum(rng.normal(0.003, 0.01, (groups, T)), axis=1)
    y = trend[group, recent] - trend[group, prev] + rng.normal(0, 0.1, n)
    first_days = np.arange(np.datetime64("2014-01"), np.datetime64("2014-01") + T).astype("datetime64[ns]")
    ns = xp.asarray(first_days.astype(np.int64))
    # int64 nanoseconds -> timestamps by the frame library (CuPy has no datetime64 dtype)
    frame = frame_type({"group_id": group, "PrevYearMonth": ns[prev], "RecentYearMonth": ns[recent], "LogPriceDiff": y})
    del group, prev, recent, y
    for name in ("PrevYearMonth", "RecentYearMonth"):
        frame[name] = frame[name].astype("datetime64[ns]")
    _write(frame, path, gpu=xp is not np)
    del frame
    _free(xp)
    return path


def sales_parquet(path: Path, n: int, seed: int, unit: str = "ms") -> Path:
    """n sale records in benchmarks.sales_parquet's schema (property_id, date, price, group_id: ~3
    sales a property over 123 months from 2014-01), dates as timestamps; unit="ns-as-ms": their
    nanosecond counts stored under a millisecond unit (a real file's mix-up). On the GPU where
    CuPy and cudf import, else numpy/pandas."""
    if path.exists():
        return path
    xp, frame_type = _modules()
    rng = xp.random.RandomState(seed)
    prop = rng.randint(0, max(n // 3, 1), n).astype(np.int64)
    month = rng.randint(0, T, n)
    trend = xp.cumsum(rng.normal(0.003, 0.01, T))
    price = xp.exp(19.5 + (prop % 997) / 997.0 + trend[month] + rng.normal(0, 0.1, n))
    first_days = np.arange(np.datetime64("2014-01"), np.datetime64("2014-01") + T).astype("datetime64[ms]")
    ms = xp.asarray(first_days.astype(np.int64))[month] + rng.randint(0, 28, n) * 86_400_000
    if unit == "ns-as-ms":
        ms = ms * 1_000_000
    frame = frame_type({"property_id": prop, "date": ms, "price": price, "group_id": (prop % GROUPS).astype(np.int32)})
    del prop, month, price, ms
    frame["date"] = frame["date"].astype("datetime64[ms]")
    _write(frame, path, gpu=xp is not np)
    del frame
    _free(xp)
    return path


def linked_parts(folder: Path, source: Path, parts: int) -> Path:
    """folder holding `parts` hard links of source (symbolic links where the file system has none)."""
    if not source.is_file():
        raise FileNotFoundError(f"{source}: not made")
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(parts):
        part = folder / f"part-{k:02d}.parquet"
        if not part.exists():
            try:
                os.link(source, part)
            except OSError:
                part.symlink_to(source.resolve())
    return folder


@dataclass(frozen=True)
class Sizes:
    scale: float

    @property
    def pairs(self) -> int:
        return int(150e6 * self.scale)

    @property
    def pairs_small(self) -> int:
        return self.pairs // CPU_SHARE

    @property
    def regions(self) -> int:  # 10,000 at full size; fewer in dry runs, where they would hold too few pairs
        return min(REGIONS, max(GROUPS, self.pairs // 15_000))

    @property
    def sales(self) -> int:
        return int(100e6 * self.scale)

    @property
    def sales_small(self) -> int:
        return int(10e6 * self.scale)


class Data:
    """The check's input files, made once and shared by the rows."""

    def __init__(self, root: Path, sizes: Sizes) -> None:
        s, self.root, self.sizes = sizes, root, sizes
        self.pairs = root / f"seed-{s.pairs}.parquet"
        self.linked = root / f"seed-{s.pairs}-x{LINKS}"
        self.regions = root / f"seed-{s.pairs}-r{s.regions}.parquet"
        self.pairs_small = root / f"seed-{s.pairs_small}.parquet"
        self.linked_small = root / f"seed-{s.pairs_small}-x{LINKS}"
        self.regions_small = root / f"seed-{s.pairs_small}-r{s.regions}.parquet"
        self.sales = root / f"sales-{s.sales}.parquet"
        self.sales_small = root / f"sales-{s.sales_small}.parquet"
        self.bad_sales = root / f"sales-ns-as-ms-{s.sales_small}.parquet"

    def make(self, which: str = "all") -> None:
        """The files ("small": the warm-ups' and the CPU's 1/20; "large": the rest; "all"), each
        one's time and size printed."""
        s = self.sizes
        small: list[tuple[Path, Callable[[], Path]]] = [
            (self.pairs_small, lambda: seed_parquet(self.pairs_small, s.pairs_small, 7)),
            (self.linked_small, lambda: linked_parts(self.linked_small, self.pairs_small, LINKS)),
            (self.regions_small, lambda: seed_parquet(self.regions_small, s.pairs_small, 8, s.regions)),
            (self.sales_small, lambda: sales_parquet(self.sales_small, s.sales_small, 4)),
            (self.bad_sales, lambda: sales_parquet(self.bad_sales, s.sales_small, 3, unit="ns-as-ms")),
        ]
        large: list[tuple[Path, Callable[[], Path]]] = [
            (self.pairs, lambda: seed_parquet(self.pairs, s.pairs, 1)),
            (self.linked, lambda: linked_parts(self.linked, self.pairs, LINKS)),
            (self.sales, lambda: sales_parquet(self.sales, s.sales, 2)),
            (self.regions, lambda: seed_parquet(self.regions, s.pairs, 6, s.regions)),
        ]
        makers = {"small": small, "large": large}.get(which, small + large)
        start = time.perf_counter()
        written = 0
        for path, make in makers:
            existed = path.exists()
            t0 = time.perf_counter()
            make()
            seconds = time.perf_counter() - t0
            size = path.stat().st_size if path.is_file() else 0
            written += 0 if existed else size
            what = "there already" if existed else f"{seconds:.1f} s, {size / 1e6:,.0f} MB"
            rate = f", {size / 1e6 / seconds:,.0f} MB/s" if size and not existed and seconds > 0 else ""
            print(f"  data {path.name}: {what}{rate}", flush=True)
        seconds = time.perf_counter() - start
        print(f"  data ({which}): {seconds:.1f} s, {written / 1e9:.2f} GB written", flush=True)


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    name: str
    wall: float
    summary: dict[str, Any]
    out: Path
    returncode: int = 0
    stderr: str = ""

    def stage(self, *names: str) -> float:
        return sum(float(self.summary["timings_s"].get(n, 0.0)) for n in names)

    def stages(self, skip: tuple[str, ...] = ()) -> float:
        return sum(float(v) for k, v in self.summary["timings_s"].items() if k not in skip)

    @property
    def read(self) -> float:
        """The read stage (read_and_table for pairs, read_and_pair for sale records)."""
        return sum(float(v) for k, v in self.summary["timings_s"].items() if k.startswith("read"))

    @property
    def work(self) -> float:
        """The stages after start-up and set-up, before writing: read, table, solve, diagnostics."""
        return self.stages(("startup", "setup", "write"))

    @property
    def after_startup(self) -> float:
        return self.stages(("startup",))

    @property
    def timings(self) -> str:
        return ", ".join(f"{k} {float(v):.2f}" for k, v in self.summary["timings_s"].items())


def _gb(value: Any) -> str:
    return "-" if value is None else f"{value / 1e9:.2f} GB"


def _ratio(cpu: float, gpu: float) -> float:
    return cpu / gpu if gpu > 0 else float("inf")


def index_difference(a: Run, b: Run) -> tuple[float, int]:
    """(max abs difference of the log index where both are finite, cells finite in one only)."""
    import pandas as pd

    x, y = (pd.read_parquet(r.out / "index.parquet", columns=["group", "period", "log_index"]) for r in (a, b))
    for frame in (x, y):  # the labels as text: a dtype that differs between the backends is no mismatch
        frame["group"], frame["period"] = frame["group"].astype(str), frame["period"].astype(str)
    both = x.merge(y, on=["group", "period"], how="outer", suffixes=("_a", "_b"))
    fa, fb = np.isfinite(both["log_index_a"].to_numpy()), np.isfinite(both["log_index_b"].to_numpy())
    diff = np.abs(both["log_index_a"].to_numpy()[fa & fb] - both["log_index_b"].to_numpy()[fa & fb])
    return (float(diff.max()) if diff.size else 0.0), int((fa != fb).sum())


def agreement(a: Run, b: Run) -> tuple[str, bool]:
    """Index and drop counts of two runs of the same job: '<= 1e-10; equal'."""
    difference, mismatched = index_difference(a, b)
    same = (a.summary["dropped"], a.summary["n_pairs_used"]) == (b.summary["dropped"], b.summary["n_pairs_used"])
    text = f"{difference:.1e}" + (f", {mismatched} cells estimated by one only" if mismatched else "")
    text += f"; drop counts and pairs used {'equal' if same else 'DIFFER'} ({a.summary['n_pairs_used']:,} pairs)"
    if not same:
        text += f" (gpu {a.summary['dropped']}, cpu {b.summary['dropped']})"
    return text, difference <= 1e-10 and not mismatched and same


def decoded_bytes(path: Path, columns: tuple[str, ...]) -> int:
    """Bytes of the columns decoded (fixed-width types), all rows of the file: the largest read
    where the device holds the file in one read, as an H200 does the 150M-pair file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path)
    width = 0
    for name in columns:
        kind = meta.schema_arrow.field(name).type
        width += kind.bit_width // 8 if pa.types.is_integer(kind) or pa.types.is_floating(kind) else 8
    return width * meta.metadata.num_rows


def solver_steps(run: Run) -> int:
    """Fits of the cell tables a robust run made: its IRLS steps and first OLS fit, groups and pooled."""
    info = run.summary.get("solver_info") or {}
    return sum(int(v.get("iterations", 0)) + 1 for v in info.values() if isinstance(v, dict))


def kernel_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def kernel_names(path: Path) -> list[str]:
    """The kernels in one cached cubin, from its ELF section names (.text.<kernel>)."""
    data = path.read_bytes()
    return sorted({m.decode() for m in re.findall(rb"\.text\.([A-Za-z_][A-Za-z0-9_]{0,200})", data)})


def importtime_table(stderr: str) -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, depth, module) of every line `python -X importtime` printed."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|", 2)
        label = name[1:] if name.startswith(" ") else name
        depth = (len(label) - len(label.lstrip(" "))) // 2
        rows.append((int(own), int(cumulative), depth, label.strip()))
    return rows


def modules_of(table: list[tuple[int, int, int, str]], package: str) -> list[str]:
    return [name for _, _, _, name in table if name == package or name.startswith(f"{package}.")]


class Stopped(RuntimeError):
    """A run the time budget stopped."""


PROFILE = """
import atexit, cProfile, runpy, sys
profile, path = cProfile.Profile(), sys.argv.pop(1)
def dump():  # gpu_hpi's cli() runs the exit handlers, then ends the process without the teardown
    profile.disable()
    profile.dump_stats(path)
atexit.register(dump)
profile.enable()
runpy.run_module("gpu_hpi", run_name="__main__", alter_sys=True)
"""


def forked_cli(
    args: list[str], env: dict[str, str], timeout: float | None, profile: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m gpu_hpi ARGS` as its entry point, cli(), runs it, in a child forked from this
    process (made ready by fork_parent): a dry run's speed. `profile`: the child under cProfile,
    its statistics written there. The GPU check itself starts each run afresh."""
    from benchmarks.forked import run_forked
    from gpu_hpi import __main__ as entry

    run = run_forked(["gpu_hpi", *args], entry.cli if profile is None else _profiled(entry.cli, profile), env, timeout)
    return subprocess.CompletedProcess(["gpu_hpi", *args], run.returncode, run.stdout, run.stderr)


def fork_parent() -> None:
    """This process made ready to fork runs from: gpu_hpi's modules imported and one small run made,
    so that no child pays the lazy imports, the font loading and the first-use set-ups (~0.25 s a
    run). That run reads no file (no DuckDB or Arrow thread pool starts): a fork copies no thread."""
    from benchmarks.forked import import_lazy_modules
    from gpu_hpi.app.library import run

    import_lazy_modules()
    threads = set(threading.enumerate())
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small market's unidentified periods
        run(["data.n_pairs=5000", "backend=cpu", "progress=false"], folder)
    if set(threading.enumerate()) - threads:
        raise RuntimeError(f"threads left to fork with: {set(threading.enumerate()) - threads}")


def _profiled(main: Callable[[], object], path: Path) -> Callable[[], None]:
    """main() under cProfile, the statistics written by the exit handlers (which cli() runs)."""

    def profiled() -> None:
        import cProfile

        profile = cProfile.Profile()

        def dump() -> None:
            profile.disable()
            profile.dump_stats(path)

        atexit.register(dump)
        profile.enable()
        main()

    return profiled


class Check:
    """The measurement runs and the rows, in the order of their value to the issue."""

    def __init__(self, out: Path, work: Path, data: Data, backend: str, budget: float, fork: bool = False) -> None:
        self.out, self.work, self.data, self.backend, self.budget = out, work, data, backend, budget
        # `python -m gpu_hpi` runs forked from this process (forked_cli), on the CPU: a "GPU" run is
        # its CPU twin's command, and a command is run once (twins: command -> the run that made it)
        self.fork = fork
        self.twins: dict[tuple[object, ...], str] = {}
        self.sizes = data.sizes
        self.runs_dir = work / "runs"
        self.warm = work / "cupy-warm"  # the warm kernel cache: warm-ups, the GPU tests, copies of the cold ones
        self.runs: dict[str, Run] = {}
        self.failed: dict[str, str] = {}
        self.stopped: dict[str, str] = {}  # runs stopped at the end of the time budget
        self.stopped_walls: dict[str, float] = {}
        self.required = False  # a group run whatever the budget says (the first)
        self.rows: list[Row] = []
        self.kernels: dict[str, Path] = {}
        self.spent = [0.0, 0.0]  # runs' seconds, their estimates
        started = os.environ.get("GPU_CHECK_START")
        self.start = float(started) if started else time.time()

    # -- runs

    def cli(
        self,
        name: str,
        *overrides: str,
        cache: Path | None = None,
        prefix: tuple[str, ...] = ("-m", "gpu_hpi"),
        folder: Path | None = None,
        expect_failure: bool = False,
    ) -> Run | None:
        """One `python -m gpu_hpi` run; a failure is recorded (the rows that need it say why)."""
        folder = folder or self.runs_dir
        twin = (prefix, overrides, expect_failure, folder)
        if self.fork and twin in self.twins:
            self.runs[name] = replace(self.runs[self.twins[twin]], name=name)
            print(f"  run {name}: the command of {self.twins[twin]}, run once (--fork: on the CPU)", flush=True)
            return self.runs[name]
        run_dir = folder / name
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, *prefix, *overrides, f"hydra.run.dir={run_dir}", "progress=false"]
        env = {**os.environ, "CUPY_CACHE_DIR": str(cache or self.warm)}
        folder.mkdir(parents=True, exist_ok=True)
        timed = folder == self.runs_dir
        limited = self.budget and timed and not self.required
        timeout = self.budget - (time.time() - self.start) if limited else None
        estimate = RUN_ESTIMATES_S.get(name)
        note = f" (estimate {estimate:.0f} s)" if estimate is not None else ""
        start = time.perf_counter()
        try:
            if timeout is not None and timeout < 1.0:
                raise subprocess.TimeoutExpired(cmd, 0.0)
            if self.fork and prefix == ("-m", "gpu_hpi"):
                proc = forked_cli(cmd[3:], env, timeout)
            elif self.fork and prefix == ("-c", PROFILE):
                proc = forked_cli(cmd[4:], env, timeout, profile=Path(cmd[3]))
            else:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=timeout)
        except subprocess.TimeoutExpired as exc:  # stopped at the end of the budget: its rows are not run
            wall = time.perf_counter() - start
            output = "".join(x.decode() if isinstance(x, bytes) else x or "" for x in (exc.stdout, exc.stderr))
            (folder / f"{name}.log").write_text(" ".join(cmd) + "\n\n" + output + f"\nstopped after {wall:.1f} s")
            self.stopped[name] = f"{name} stopped after {wall:.0f} s, at the end of the {self.budget:.0f} s budget"
            self.stopped_walls[name] = wall
            print(f"  run {name}: {self.stopped[name]}{note}", flush=True)
            return None
        wall = time.perf_counter() - start
        (folder / f"{name}.log").write_text(" ".join(cmd) + "\n\n" + proc.stdout + proc.stderr)
        if estimate is not None and timed:
            self.spent[0] += wall
            self.spent[1] += estimate
        summary_path = run_dir / "summary.json"
        if expect_failure:
            print(f"  run {name}: exit {proc.returncode}, {wall:.2f} s{note}", flush=True)
            self.runs[name] = Run(name, wall, {}, run_dir, proc.returncode, proc.stderr)
            self.twins[twin] = name
            return self.runs[name]
        if proc.returncode != 0 or not summary_path.exists():
            last = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
            self.failed[name] = f"{name}: exit {proc.returncode}: {last[0]}"
            print(f"  run {name}: FAILED after {wall:.2f} s: {last[0]}", flush=True)
            return None
        run = Run(name, wall, json.loads(summary_path.read_text()), run_dir, 0, proc.stderr)
        self.runs[name] = run
        self.twins[twin] = name
        print(f"  run {name}: {wall:.2f} s{note} ({run.timings})", flush=True)
        return run

    def get(self, name: str) -> Run:
        if name in self.stopped:
            raise Stopped(self.stopped[name])
        if name not in self.runs:
            raise RuntimeError(self.failed.get(name, f"{name} did not run"))
        return self.runs[name]

    def speedup(self, gpu: str, cpu: str, target: float, detail: Callable[[Run, Run], str]) -> tuple[str, bool | None]:
        """CPU wall / GPU wall against the target; where the budget stopped the CPU run, its time
        so far is a lower bound: PASS if that reaches the target, else not measured."""
        g = self.get(gpu)
        if cpu in self.stopped_walls:
            ratio = _ratio(self.stopped_walls[cpu], g.wall)
            text = f"GPU {g.wall:.2f} s, CPU stopped after {self.stopped_walls[cpu]:.0f} s: at least {ratio:.1f}x"
            return text, True if ratio >= target else None
        c = self.get(cpu)
        ratio = _ratio(c.wall, g.wall)
        return f"GPU {g.wall:.2f} s, CPU {c.wall:.2f} s: {ratio:.1f}x" + detail(g, c), ratio >= target

    def gpu(self) -> str:
        return f"backend={self.backend}"

    def pairs_args(self, path: Path) -> list[str]:
        return ["data=pairs", f"data.path={path}"]

    def sales_args(self, path: Path) -> list[str]:
        return ["data=transactions", f"data.path={path}", "data.columns.property=property_id"]

    def fresh_cache(self, name: str) -> Path:
        folder = self.work / f"cupy-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def keep_kernels(self, name: str, folder: Path) -> None:
        """The cold run's kernels, noted, and copied into the warm cache for the later runs."""
        self.kernels[name] = folder
        self.warm.mkdir(parents=True, exist_ok=True)
        for path in kernel_files(folder):
            target = self.warm / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copy2(path, target)

    def kernel_count(self, name: str) -> int:
        return len(kernel_files(self.kernels[name])) if name in self.kernels else 0

    # -- groups and rows

    def group(
        self,
        title: str,
        runs: list[str],
        execute: Callable[[], object],
        rows: list[tuple[str, str, Callable[[], tuple[str, bool | None]]]],
        required: bool = False,
    ) -> None:
        estimate = sum(RUN_ESTIMATES_S.get(r, 0.0) for r in runs)
        pace = min(max(self.spent[0] / self.spent[1], 0.5), 2.0) if self.spent[1] else 1.0
        left = self.budget - (time.time() - self.start)
        print(f"== {title}", flush=True)
        if self.budget and estimate * pace > left and not required:
            reason = f"not run: {estimate * pace:.0f} s estimated, {left:.0f} s left of the {self.budget:.0f} s budget"
            print(f"  {reason}", flush=True)
            for case, target, _ in rows:
                self.rows.append(Row(23, case, target, reason, None))
            return
        start = time.perf_counter()
        self.required = required
        execute()
        self.required = False
        for case, target, fn in rows:
            row = Row(23, case, target)
            try:
                row.measured, row.ok = fn()
            except Stopped as exc:
                row.measured, row.ok = f"not run: {exc}", None
            except Exception as exc:  # a row that cannot be measured fails, and the rest still run
                row.measured, row.ok = f"error: {exc}", False
            self.rows.append(row)
            print(f"{row.verdict:7} {row.case}: {row.measured} (target {row.target})", flush=True)
        print(f"-- {title}: {time.perf_counter() - start:.1f} s (estimate {estimate:.0f} s)", flush=True)

    def measure(self) -> list[Row]:
        shutil.rmtree(self.runs_dir, ignore_errors=True)
        if self.fork:
            fork_parent()
        s, d = self.sizes, self.data
        self.group_pairs(s, d)
        self.group_sales_cold(s, d)
        self.group_linked(s, d)
        self.group_sales(s, d)
        self.group_refusal(s, d)
        self.group_week(s, d)
        self.group_heavy(s, d)
        self.write_kernels()
        for name, run in (("importtime", "pairs-gpu"), ("profile", "profile")):  # where the runs were left out
            if not (self.out / f"{name}.txt").exists():
                (self.out / f"{name}.txt").write_text(f"{self.failed.get(run, 'not run')}\n")
        return self.rows

    def group_pairs(self, s: Sizes, d: Data) -> None:
        args = [*self.pairs_args(d.pairs), self.gpu()]
        n = f"{s.pairs:,} pairs"

        def execute() -> None:
            cold = self.fresh_cache("cold-pairs")
            self.cli("pairs-cold", *args, cache=cold)
            self.keep_kernels("pairs", cold)
            # the warm run, its imports timed too (~1,300 imports: milliseconds of the wall)
            self.cli("pairs-gpu", *args, cache=cold, prefix=("-X", "importtime", "-m", "gpu_hpi"))
            self.write_importtime()
            self.cli("pairs-cpu", *self.pairs_args(d.pairs), "backend=cpu")
            profile = self.runs_dir / "profile.pstats"
            self.cli("profile", str(profile), *args, cache=cold, prefix=("-c", PROFILE))
            self.write_profile(profile)

        def wall() -> tuple[str, bool]:
            g, c = self.get("pairs-gpu"), self.get("pairs-cpu")
            text = f"{g.wall:.2f} s; backend=cpu {c.wall:.2f} s: {g.wall / c.wall:.2f} x the CPU's"
            return text, g.wall <= 2.5 and g.wall <= 0.75 * c.wall

        def setup() -> tuple[str, bool]:
            g = self.get("pairs-gpu")
            return f"{g.stage('setup'):.2f} s", g.stage("setup") <= 0.5

        def work() -> tuple[str, bool]:
            g = self.get("pairs-gpu")
            return f"{g.work:.3f} s ({g.timings})", g.work <= 0.5

        def diagnostics(name: str) -> Callable[[], tuple[str, bool]]:
            return lambda: (f"{self.get(name).stage('diagnostics'):.3f} s", self.get(name).stage("diagnostics") <= 0.1)

        def peak() -> tuple[str, bool | None]:
            value = self.get("pairs-gpu").summary.get("peak_device_bytes")
            if value is None:
                return f"none in summary.json (backend={self.backend})", None
            columns = ("group_id", "PrevYearMonth", "RecentYearMonth", "LogPriceDiff")
            limit = 2 * decoded_bytes(d.pairs, columns)
            return f"{_gb(value)} (limit {_gb(limit)}: the file's four columns, one read)", value <= limit

        def agree() -> tuple[str, bool]:
            return agreement(self.get("pairs-gpu"), self.get("pairs-cpu"))

        def cold() -> tuple[str, bool]:
            c, w = self.get("pairs-cold"), self.get("pairs-gpu")
            text = f"{c.wall:.2f} s (warm {w.wall:.2f} s, +{c.wall - w.wall:.2f} s); "
            text += f"{self.kernel_count('pairs')} kernels compiled (kernels.txt); {c.timings}"
            return text, c.wall <= w.wall + 1.0

        def no_cudf() -> tuple[str, bool]:
            table = importtime_table(self.get("pairs-gpu").stderr)
            if not table:
                raise RuntimeError("no -X importtime lines in the run's stderr")
            found = {package: modules_of(table, package) for package in ("cudf", "cupy")}
            top = max(table, key=lambda r: r[1])
            text = "; ".join(
                f"{len(names)} {package} modules" + (f" ({', '.join(names[:3])}, ...)" if names else "")
                for package, names in found.items()
            )
            text += f"; {len(table)} imports, {top[3]} {top[1] / 1e6:.2f} s cumulative"
            return text, not any(found.values())

        self.group(
            f"{n}, default options: cold, warm (-X importtime), backend=cpu, profile",
            ["pairs-cold", "pairs-gpu", "pairs-cpu", "profile"],
            execute,
            [
                (f"{n}, warm, default options: wall", "<= 2.5 s and <= 0.75 x backend=cpu", wall),
                ("same: setup stage", "<= 0.5 s", setup),
                ("same: read + table + solve + diagnostics", "<= 0.5 s", work),
                ("same: diagnostics stage (17 x 123), backend=gpu", "<= 0.1 s", diagnostics("pairs-gpu")),
                ("same: diagnostics stage (17 x 123), backend=cpu", "<= 0.1 s", diagnostics("pairs-cpu")),
                ("same: peak device memory (summary.json)", "<= 2 x the largest read's columns", peak),
                ("same: backend=gpu vs cpu, log index max abs; drop counts", "<= 1e-10; equal", agree),
                ("same, empty kernel cache (a new CUPY_CACHE_DIR): wall", "<= warm wall + 1 s", cold),
                ("same, warm run under python -X importtime: cudf and CuPy modules imported", "none", no_cudf),
            ],
            required=True,
        )

    def group_sales_cold(self, s: Sizes, d: Data) -> None:
        args = [*self.sales_args(d.sales_small), self.gpu()]

        def execute() -> None:
            cold = self.fresh_cache("cold-sales")
            self.cli("sales-cold", *args, cache=cold)
            self.keep_kernels("sales", cold)
            self.cli("sales-warm", *args, cache=cold)

        def cold() -> tuple[str, bool]:
            c, w = self.get("sales-cold"), self.get("sales-warm")
            text = f"{c.wall:.2f} s (warm {w.wall:.2f} s, +{c.wall - w.wall:.2f} s); "
            text += f"{self.kernel_count('sales')} kernels compiled (kernels.txt); {c.timings}"
            return text, c.wall <= w.wall + 1.0

        self.group(
            f"data=transactions, {s.sales_small:,} sales: cold and warm",
            ["sales-cold", "sales-warm"],
            execute,
            [
                (
                    f"data=transactions, {s.sales_small:,} sales, default options, empty kernel cache: wall",
                    "<= warm wall + 1 s",
                    cold,
                )
            ],
        )

    def group_linked(self, s: Sizes, d: Data) -> None:
        args = self.pairs_args(d.linked)
        n = f"{LINKS * s.pairs:,} pairs in {LINKS} files ({LINKS} hard links of the {s.pairs:,}-pair file)"

        def execute() -> None:
            self.cli("x8-gpu", *args, self.gpu())
            self.cli("x8-cpu", *args, "backend=cpu")

        def wall() -> tuple[str, bool | None]:
            return self.speedup(
                "x8-gpu", "x8-cpu", 3.0, lambda g, c: f" (index max abs {index_difference(g, c)[0]:.1e})"
            )

        def read() -> tuple[str, bool]:
            g, c = self.get("x8-gpu"), self.get("x8-cpu")
            ratio = _ratio(c.read, g.read)
            return f"GPU {g.read:.2f} s, CPU {c.read:.2f} s: {ratio:.1f}x", ratio >= 6.0

        self.group(
            f"{n}: backend=gpu, backend=cpu",
            ["x8-gpu", "x8-cpu"],
            execute,
            [(f"{n}: wall, gpu vs cpu", ">= 3x", wall), ("same: read_and_table, gpu vs cpu", ">= 6x", read)],
        )

    def group_sales(self, s: Sizes, d: Data) -> None:
        args = [*self.sales_args(d.sales), *SALES_FILTERS]
        n = f"{s.sales:,} sales, {', '.join(f.split('.', 1)[1] for f in SALES_FILTERS)}"

        def execute() -> None:
            self.cli("sales-gpu", *args, self.gpu())
            self.cli("sales-cpu", *args, "backend=cpu")

        def stages() -> tuple[str, bool]:
            g = self.get("sales-gpu")
            return f"{g.after_startup:.2f} s ({g.timings})", g.after_startup <= 1.5

        def wall() -> tuple[str, bool | None]:
            return self.speedup("sales-gpu", "sales-cpu", 4.0, lambda g, c: f" (CPU {c.timings})")

        self.group(
            f"{n}: backend=gpu, backend=cpu",
            ["sales-gpu", "sales-cpu"],
            execute,
            [
                (f"{n}, backend=gpu: stages after startup", "<= 1.5 s", stages),
                ("same: wall, gpu vs cpu", ">= 4x", wall),
                (
                    "same: gpu vs cpu, log index max abs; drop counts",
                    "<= 1e-10; equal",
                    lambda: agreement(self.get("sales-gpu"), self.get("sales-cpu")),
                ),
            ],
        )

    def group_refusal(self, s: Sizes, d: Data) -> None:
        args = self.sales_args(d.bad_sales)

        def execute() -> None:
            for name, backend in (("ns-as-ms-gpu", self.backend), ("ns-as-ms-cpu", "cpu")):
                self.cli(name, *args, f"backend={backend}", expect_failure=True)

        def refusal(name: str) -> Callable[[], tuple[str, bool]]:
            def fn() -> tuple[str, bool]:
                run = self.get(name)
                lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
                errors = [ln for ln in lines if ln.startswith("gpu_hpi: error:")]
                traceback = any("Traceback" in ln for ln in lines)
                ok = run.returncode == 2 and len(errors) == 1 and not traceback and run.wall <= 2.0
                text = f"exit {run.returncode} in {run.wall:.2f} s, {len(errors)} error line(s) of {len(lines)}"
                text += (", a traceback" if traceback else "") + (f": {errors[0][:90]}" if errors else "")
                return text, ok

            return fn

        n = f"{s.sales_small:,} sales with ns stored as ms"
        self.group(
            f"{n}: backend=gpu, backend=cpu",
            ["ns-as-ms-gpu", "ns-as-ms-cpu"],
            execute,
            [
                (f"{n}, backend=gpu: exit 2, one line, no traceback", "<= 2 s wall", refusal("ns-as-ms-gpu")),
                (f"{n}, backend=cpu: exit 2, one line, no traceback", "<= 2 s wall", refusal("ns-as-ms-cpu")),
            ],
        )

    def group_week(self, s: Sizes, d: Data) -> None:
        def read() -> tuple[str, bool]:
            g = self.get("week-gpu")
            return f"{g.read:.2f} s ({g.timings})", g.read <= 1.0

        n = f"index.periodicity=week, {s.pairs:,} pairs, backend=gpu (revision off): read_and_table"
        self.group(
            "index.periodicity=week",
            ["week-gpu"],
            lambda: self.cli("week-gpu", *self.pairs_args(d.pairs), self.gpu(), *WEEK),
            [(n, "<= 1 s", read)],
        )

    def group_heavy(self, s: Sizes, d: Data) -> None:
        """Robust and 10 folds (the CPU on 1/20 of the pairs, scaled), then 10,000 regions (both at full size)."""
        share = f"the CPU's wall estimated from runs on {s.pairs_small:,} pairs"
        for key, option, target, grows, base_grows in (
            ("robust", "method=robust", 8.0, ("read_and_table", "assemble_pairs", "solve"), ("read_and_table",)),
            (
                "folds",
                "diagnostics.accuracy_folds=10",
                5.0,
                ("read_and_table", "assemble_pairs", "diagnostics"),
                ("read_and_table", "diagnostics"),
            ),
        ):

            def execute(key: str = key, option: str = option) -> None:
                self.cli(f"{key}-gpu", *self.pairs_args(d.pairs), option, self.gpu())
                self.cli(f"{key}-cpu", *self.pairs_args(d.pairs_small), option, "backend=cpu")
                if "small-cpu" not in self.runs:  # the same pairs with default options
                    self.cli("small-cpu", *self.pairs_args(d.pairs_small), "backend=cpu")

            def ratio(
                key: str = key,
                target: float = target,
                grows: tuple[str, ...] = grows,
                base: tuple[str, ...] = base_grows,
            ) -> tuple[str, bool]:
                g, c, c0, full = (self.get(n) for n in (f"{key}-gpu", f"{key}-cpu", "small-cpu", "pairs-cpu"))
                # the fits of the 17-region tables (one per IRLS step, one per fold) cost what the
                # default run's fits cost (its solve stage: groups and pooled), whatever the pairs
                per_fit = c0.stage("solve") / max(len(c0.summary.get("solver_info") or {}), 1)
                fits = 10 if key == "folds" else solver_steps(c)
                added = max(c.stage(*grows) - c0.stage(*base) - fits * per_fit, 0.0)
                estimate = full.wall + CPU_SHARE * added
                speedup = _ratio(estimate, g.wall)
                text = f"GPU {g.wall:.2f} s; CPU ~{estimate:.0f} s: ~{speedup:.1f}x (the CPU's default run "
                text += f"{full.wall:.2f} s + {CPU_SHARE} x {added:.2f} s, what the option added to "
                text += f"{' + '.join(grows)} on 1/{CPU_SHARE} of the pairs, less {fits} fits of "
                text += f"{per_fit:.3f} s: {c.timings}; default {c0.timings})"
                return text, speedup >= target

            runs = [f"{key}-gpu", f"{key}-cpu"] + (["small-cpu"] if key == "robust" else [])
            self.group(
                f"{option}: backend=gpu at {s.pairs:,} pairs, backend=cpu at {s.pairs_small:,}",
                runs,
                execute,
                [(f"{option}, {s.pairs:,} pairs: wall, gpu vs cpu ({share})", f">= {target:.0f}x", ratio)],
            )

        def regions_execute() -> None:
            self.cli("regions-gpu", *self.pairs_args(d.regions), *NO_REVISION, self.gpu())
            self.cli("regions-cpu", *self.pairs_args(d.regions), *NO_REVISION, "backend=cpu")

        def regions() -> tuple[str, bool | None]:
            return self.speedup("regions-gpu", "regions-cpu", 5.0, lambda g, c: f" (GPU {g.timings}; CPU {c.timings})")

        n = f"{s.pairs:,} pairs x {s.regions:,} regions"
        self.group(
            f"{n}: backend=gpu, backend=cpu",
            ["regions-gpu", "regions-cpu"],
            regions_execute,
            [(f"{n}: wall, gpu vs cpu (revision off on both: refits on the host)", ">= 5x", regions)],
        )

    # -- the diagnosis files

    def write_importtime(self) -> None:
        run = self.runs.get("pairs-gpu")
        table = importtime_table(run.stderr) if run else []
        lines = [f"python -X importtime of the warm {self.sizes.pairs:,}-pair run (pairs-gpu), backend={self.backend}"]
        if not table:
            lines.append(self.failed.get("pairs-gpu", "no -X importtime lines"))
        else:
            lines.append(f"wall {run.wall:.2f} s ({run.timings}); {len(table)} modules imported" if run else "")
            for package in ("cudf", "cupy"):
                found = modules_of(table, package)
                lines.append(f"{package} modules: {', '.join(found[:10]) if found else 'none'}")
            for name in ("cupy", "pylibcudf", "rmm", "pyarrow", "duckdb", "hydra", "pandas", "matplotlib"):
                hit = [r for r in table if r[3] == name]
                if hit:
                    lines.append(f"  {name}: {hit[0][1] / 1e3:.0f} ms cumulative")
            lines += ["", "top 25 by cumulative time:", f"{'cumulative ms':>14} {'self ms':>9}  module"]
            for own, cumulative, depth, name in sorted(table, key=lambda r: -r[1])[:25]:
                lines.append(f"{cumulative / 1e3:14.1f} {own / 1e3:9.1f}  {'  ' * depth}{name}")
        (self.out / "importtime.txt").write_text("\n".join(lines) + "\n")

    def write_profile(self, stats_path: Path) -> None:
        import pstats

        run = self.runs.get("profile")
        head = f"cProfile of the warm {self.sizes.pairs:,}-pair run, backend={self.backend} (the main thread)\n"
        if run is None or not stats_path.exists():
            text = head + self.failed.get("profile", "no profile written") + "\n"
        else:
            stream = io.StringIO()
            stats = pstats.Stats(str(stats_path), stream=stream)
            stats.sort_stats("cumulative").print_stats(30)
            stream.write("The same, top 15 by own time:\n")
            stats.sort_stats("tottime").print_stats(15)
            text = head + f"wall {run.wall:.2f} s under the profiler ({run.timings})\n" + stream.getvalue()
        (self.out / "profile.txt").write_text(text)

    def write_kernels(self) -> None:
        lines = []
        for name, run in (("pairs", "pairs-cold"), ("sales", "sales-cold")):
            folder = self.kernels.get(name)
            if folder is None:
                lines += [f"{run}: {self.failed.get(run, 'not run')}", ""]
                continue
            files = kernel_files(folder)
            lines.append(f"{run}: {len(files)} files added to an empty CUPY_CACHE_DIR ({folder})")
            for path in files:
                names = kernel_names(path)
                lines.append(f"  {path.relative_to(folder)} {path.stat().st_size:,} B: {' '.join(names) or '?'}")
            lines.append("")
        (self.out / "kernels.txt").write_text("\n".join(lines))


WEEK = ("index.periodicity=week", "diagnostics.revision=false")  # the row times the read
NO_REVISION = ("diagnostics.revision=false",)


def warm_ups(check: Check) -> None:
    """Small runs of every GPU job the rows time, so that their kernels are compiled into the warm
    cache before the timed runs (the cold runs have their own, empty, caches)."""
    d = check.data
    small, sales = check.pairs_args(d.pairs_small), check.sales_args(d.sales_small)
    folder = check.work / "warm-ups"
    shutil.rmtree(folder, ignore_errors=True)
    for name, args in (
        ("default", small),
        ("linked", check.pairs_args(d.linked_small)),
        ("robust", [*small, "method=robust"]),
        ("folds", [*small, "diagnostics.accuracy_folds=10"]),
        ("week", [*small, *WEEK]),
        ("regions", [*check.pairs_args(d.regions_small), *NO_REVISION]),
        ("sales", [*sales, *SALES_FILTERS]),
    ):
        check.cli(f"warm-up-{name}", *args, *QUIET, check.gpu(), folder=folder)
    check.cli("warm-up-refusal", *check.sales_args(d.bad_sales), check.gpu(), folder=folder, expect_failure=True)


PLAN = (  # the groups of runs in their order (the budget leaves out the last ones first)
    (
        "150M pairs, default options: cold, warm, backend=cpu, profile",
        "pairs-cold pairs-gpu pairs-cpu profile",
    ),
    ("10M sales, default options: cold, warm", "sales-cold sales-warm"),
    ("1.2B pairs (8 hard links): gpu, cpu", "x8-gpu x8-cpu"),
    ("100M sales with the three filters: gpu, cpu", "sales-gpu sales-cpu"),
    ("10M sales, ns stored as ms: gpu, cpu", "ns-as-ms-gpu ns-as-ms-cpu"),
    ("150M pairs, weeks: gpu", "week-gpu"),
    ("method=robust: gpu 150M, cpu 7.5M (and default options)", "robust-gpu robust-cpu small-cpu"),
    ("10 accuracy folds: gpu 150M, cpu 7.5M", "folds-gpu folds-cpu"),
    ("150M pairs x 10,000 regions: gpu, cpu", "regions-gpu regions-cpu"),
)


def plan_lines(sizes: Sizes) -> list[str]:
    tests, install, table = STEP_ESTIMATES_S.values()
    rows = [(title, sum(RUN_ESTIMATES_S[r] for r in runs.split())) for title, runs in PLAN]
    total = install + max(tests, PREPARE_ESTIMATE_S) + sum(s for _, s in rows) + table
    scale = "" if sizes.scale == 1.0 else f" (this run: {sizes.scale:g} of the sizes)"
    return [
        f"plan: seconds on an H200 at full size, estimated with the code of 2026-12-04{scale}",
        f"  1. install check{install:58.0f}",
        f"  2. GPU tests (pytest -m gpu, one process){tests:33.0f}",
        f"     beside them: data (5.4 GB written) and 8 kernel warm-ups{PREPARE_ESTIMATE_S:16.0f}  (the longer counts)",
        "  3. rows",
        *(f"     {title:<68}{s:4.0f}" for title, s in rows),
        f"  4. table and tar{table:58.0f}",
        f"  total{total:69.0f}  (budget {BUDGET_S:.0f} s: a group that would end past it is left out)",
    ]


def write_table(out: Path, rows: list[Row]) -> str:
    lines = ["| # | case | target | measured | verdict |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {r.case} | {r.target} | {r.measured} | {r.verdict} |" for k, r in enumerate(rows, 1)]
    table = "\n".join(lines)
    (out / "targets.md").write_text(table + "\n")
    (out / "targets.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return table


def finish(out: Path, work: Path, seconds: float, steps: str) -> str:
    """gpu_check.sh's own row, the table again, and every run's log and summary.json in one tar."""
    path = out / "targets.json"
    rows = [Row(**r) for r in json.loads(path.read_text())] if path.exists() else []
    rows.append(
        Row(23, f"benchmarks/gpu_check.sh on this machine, data included ({steps})", "<= 300 s", f"{seconds:.0f} s")
    )
    rows[-1].ok = seconds <= BUDGET_S
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for folder in ("runs", "warm-ups"):
            for path in sorted((work / folder).rglob("*")) if (work / folder).exists() else []:
                small = path.suffix in {".log", ".json", ".yaml", ".pstats"} and path.stat().st_size < 4 << 20
                if path.is_file() and small:
                    tar.add(path, arcname=str(path.relative_to(work)))
        if (work / "prepare.log").exists():
            tar.add(work / "prepare.log", arcname="prepare.log")
    return write_table(out, rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_targets", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the table and the diagnosis files (kept small)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the target sizes (dry runs)")
    parser.add_argument("--backend", default="gpu", choices=["gpu", "cpu"], help="the side measured as the GPU")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("GPU_CHECK_WORK", "/tmp/gpu-check")))
    parser.add_argument("--data", type=Path, default=None, help="data folder (default WORK/data)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole check (0: none)")
    parser.add_argument("--plan", action="store_true", help="print the steps' estimated seconds")
    parser.add_argument("--prepare", action="store_true", help="make the data, then the kernel warm-ups")
    parser.add_argument("--finish", type=float, default=None, metavar="SECONDS", help="add gpu_check.sh's row")
    parser.add_argument("--steps", default="", help="with --finish: the steps' seconds, for the row")
    parser.add_argument(
        "--fork", action="store_true", help="dry runs: each run forked from this process (no start-up, no imports)"
    )
    args = parser.parse_args()
    if args.fork and args.backend != "cpu":
        parser.error("--fork forks runs on the CPU only (--backend cpu): a process that has started CUDA cannot")
    sizes = Sizes(args.scale)
    if args.plan:
        print("\n".join(plan_lines(sizes)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.finish is not None:
        print(finish(args.out, args.work, args.finish, args.steps))
        return
    data = Data(args.data or args.work / "data", sizes)
    full = args.scale == 1.0 and args.backend == "gpu"
    budget = args.budget if args.budget is not None else (BUDGET_S - FINISH_S if full else 0.0)
    check = Check(args.out, args.work, data, args.backend, budget, fork=args.fork)
    start = time.perf_counter()
    if args.prepare:  # the warm-ups run beside the large files' generation
        data.make("small")
        warm = threading.Thread(target=warm_ups, args=(check,)) if args.backend == "gpu" else None
        if warm is not None:
            warm.start()
        data.make("large")
        if warm is not None:
            warm.join()
        print(f"  prepare: {time.perf_counter() - start:.1f} s", flush=True)
        return
    data.make()
    rows = check.measure()
    print(f"== rows: {time.perf_counter() - start:.1f} s", flush=True)
    print(write_table(args.out, rows))


if __name__ == "__main__":
    main()
