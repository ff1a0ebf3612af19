"""Shared test helpers: the app's configuration composed in-process, as `python -m gpu_hpi` would;
the command line run in-process (or as a subprocess) and its outputs; pairs files to feed it;
tests/reference.py's problems through the library; the seed schema, parquet files of pairs and
timestamps for the readers."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from reference import Problem, reference_index

import gpu_hpi
from gpu_hpi.synthetic import SyntheticMarket


def compose_config(*overrides: str) -> Any:
    """The composed configuration (DictConfig) for these overrides, for pipeline.run in-process, as
    the library composes it (app.library.compose: Hydra's composition of the choices kept per
    process; tests/unit/app/test_library.py holds it equal to Hydra's compose)."""
    from gpu_hpi.app.library import compose as library_compose

    return library_compose(list(overrides))


def noisy_short_precise_long(seed: int = 21, n: int = 4000, t: int = 40) -> tuple[Any, Any, Any]:
    """(prev, recent, y) of pairs whose short holdings are noisy and long ones precise: Case-Shiller's
    linear stage-2 variance turns negative past some holding length (weight-0 pairs)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    prev = rng.integers(0, t - 1, n)
    hold = np.where(rng.random(n) < 0.5, rng.integers(1, 4, n), rng.integers(20, 39, n))
    recent = np.minimum(prev + hold, t - 1)
    keep = recent > prev
    prev, recent = prev[keep], recent[keep]
    h = recent - prev
    truth = np.cumsum(rng.normal(0.01, 0.02, t))
    y = truth[recent] - truth[prev] + rng.normal(0, 1, len(h)) * np.where(h < 5, 0.3, 0.01)
    return prev, recent, y


REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("index.csv", "index.parquet", "summary.json", "index.png", "diagnostics.csv")
COLUMNS = ["group", "period", "log_index", "index", "se", "ci_low", "ci_high", "n_pairs"]
FLOATS = ["log_index", "index", "se", "ci_low", "ci_high"]
SUMMARY_KEYS = {
    "n_pairs_read",
    "n_pairs_used",
    "dropped",
    "method",
    "solver",
    "solver_info",
    "backend",
    "device",
    "periodicity",
    "first_period",
    "last_period",
    "base_period",
    "n_periods",
    "n_groups",
    "timings_s",
    "peak_host_bytes",
    "peak_device_bytes",
    "outputs",
}
START_MONTH = 2014 * 12  # absolute month of 2014-01


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str], run_dir: Path) -> None:
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.dir = run_dir

    def ok(self) -> Run:
        assert self.rc == 0, f"exit {self.rc}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        return self

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.dir / "summary.json").read_text())

    @property
    def frame(self) -> pd.DataFrame:
        return pd.read_parquet(self.dir / "index.parquet")

    @property
    def csv(self) -> pd.DataFrame:
        return pd.read_csv(self.dir / "index.csv", dtype={"group": str, "period": str})

    def assert_failed(self, *fragments: str) -> str:
        """Exit 2 with a single 'gpu_hpi: error:' line on stderr, no traceback, no outputs."""
        assert self.rc == 2, f"exit {self.rc}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        assert "Traceback" not in self.stderr and "Traceback" not in self.stdout, self.stdout + self.stderr
        errors = [ln for ln in self.stderr.splitlines() if ln.startswith("gpu_hpi: error:")]
        assert len(errors) == 1, self.stderr
        # Hydra's logging may print INFO lines before it; nothing but the error line after them
        others = [
            ln
            for ln in self.stderr.splitlines()
            if ln.strip() and not ln.startswith("gpu_hpi: error:") and "][gpu_hpi][INFO]" not in ln
        ]
        assert not others, self.stderr
        for name in OUTPUTS:
            assert not (self.dir / name).exists(), f"{name} written despite the error"
        for frag in fragments:
            assert frag in errors[0], errors[0]
        return errors[0]


def run_cli(
    tmp_path: Path,
    *overrides: str,
    name: str = "run",
    plot: bool = False,
    timeout: float = 120,
    mem_limit: int | None = None,
    subprocess_run: bool = False,
    env: dict[str, str] | None = None,
) -> Run:
    """`python -m gpu_hpi hydra.run.dir=tmp_path/name *overrides` (output.plot=false unless plot),
    run in this process by `gpu_hpi.__main__.main` with its exit code, stdout and stderr captured,
    or as a real subprocess (`subprocess_run`, or a `mem_limit` on its address space; `env` added
    to its environment)."""
    run_dir = tmp_path / name
    args = [f"hydra.run.dir={run_dir}", *overrides]
    if not plot:
        args.append("output.plot=false")
    if not (subprocess_run or mem_limit):
        rc, stdout, stderr = main_in_process(args, cwd=tmp_path)
        return Run(subprocess.CompletedProcess(args, rc, stdout, stderr), run_dir)
    environment = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR",)}
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [environment.get("PYTHONPATH")])])
    environment.update(env or {})

    def limit() -> None:  # keep a runaway allocation from taking the machine down
        if mem_limit:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))

    proc = subprocess.run(
        [sys.executable, "-m", "gpu_hpi", *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit if mem_limit else None,
    )
    return Run(proc, run_dir)


def run_app(tmp_path: Path, *overrides: str, name: str = "run", plot: bool = False) -> Run:
    """The job of `python -m gpu_hpi *overrides` through hydra.compose + `__main__.run_job` (which
    calls pipeline.run) in this process, outputs into tmp_path/name: the exit code, stdout and
    stderr the command line would give, without Hydra's run machinery (run directory, its lock and
    log, overrides checked before the run), which run_cli tests."""
    from gpu_hpi import __main__ as app

    run_dir = tmp_path / name
    cfg = compose_config(*overrides, *([] if plot else ["output.plot=false"]))
    run_dir.mkdir(parents=True, exist_ok=True)
    rc, stdout, stderr = in_process(lambda: app.run_job(cfg, run_dir), cwd=tmp_path)
    return Run(subprocess.CompletedProcess(list(overrides), rc, stdout, stderr), run_dir)


def main_in_process(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `gpu_hpi.__main__.main()` with these arguments, run in this
    process from `cwd`."""
    from gpu_hpi import __main__ as app

    argv = sys.argv
    try:
        sys.argv = ["gpu_hpi", *args]
        return in_process(app.main, cwd)
    finally:
        sys.argv = argv


def in_process(job: Any, cwd: Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of job() run in this process from `cwd`, leaving the process as
    it found it (cwd, signal handlers, logging, warnings)."""

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    handlers_before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    handlers, level, formatwarning = root.handlers[:], root.level, warnings.formatwarning
    unraisablehook = sys.unraisablehook
    rc = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")  # shown once a run, as in a fresh interpreter
            # which ignores ResourceWarning: an earlier test's unclosed file, collected during this
            # job, is not this job's line on stderr
            warnings.simplefilter("ignore", ResourceWarning)
            warnings.showwarning = show  # to this run's stderr, not pytest's record
            try:
                job()
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(here)
        for sig, handler in handlers_before.items():
            signal.signal(sig, handler)
        for handler in root.handlers:  # Hydra's, for this run (its log file among them)
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        warnings.formatwarning = formatwarning
        sys.unraisablehook = unraisablehook
    return rc, out.getvalue(), err.getvalue()


def q(path: Path | str) -> str:
    """A path as a quoted Hydra override value."""
    return "'" + str(path) + "'"


def make_pairs(n: int = 6000, n_periods: int = 36, n_groups: int = 3, seed: int = 0) -> pd.DataFrame:
    """Pairs over months 0..n_periods-1 (relative to 2014-01), every period of every group touched,
    the first and last month used (so the inferred window is exactly n_periods months)."""
    rng = np.random.default_rng(seed)
    true = np.cumsum(rng.normal(0.004, 0.01, (n_groups, n_periods)), axis=1)
    group = rng.integers(0, n_groups, n)
    hold = np.minimum(rng.geometric(1 / 12, n), n_periods - 1)
    prev = (rng.random(n) * (n_periods - hold)).astype(np.int64)
    recent = prev + hold
    # a chain 0 -> 1 -> ... -> T-1 in every group
    chain = np.arange(n_periods - 1)
    for g in range(n_groups):
        sl = slice(g * (n_periods - 1), (g + 1) * (n_periods - 1))
        group[sl], prev[sl], recent[sl] = g, chain, chain + 1
    y = true[group, recent] - true[group, prev] + rng.normal(0, 0.05, n)
    return pd.DataFrame({"g": group, "prev": prev, "recent": recent, "y": y})


def month_starts(rel_months: np.ndarray, day: int = 1) -> pd.Series:
    absm = START_MONTH + np.asarray(rel_months)
    return pd.to_datetime(pd.DataFrame({"year": absm // 12, "month": absm % 12 + 1, "day": day}))


def month_labels(abs_months: np.ndarray) -> np.ndarray:
    return np.asarray([f"{m // 12:04d}-{m % 12 + 1:02d}" for m in abs_months], dtype=object)


def seed_frame(pairs: pd.DataFrame, day: int = 1, group: str = "int") -> pd.DataFrame:
    """The pairs in the seed schema with timestamp periods."""
    g = pairs["g"].to_numpy()
    return pd.DataFrame(
        {
            "group_id": g if group == "int" else np.asarray(["north", "south", "east", "west"], dtype=object)[g],
            "PrevYearMonth": month_starts(pairs["prev"].to_numpy(), day),
            "RecentYearMonth": month_starts(pairs["recent"].to_numpy(), day),
            "LogPriceDiff": pairs["y"].to_numpy(),
        }
    )


def expected_frame(
    prev_abs: Any,
    recent_abs: Any,
    y: Any,
    group: Any,
    labels_of: Any = month_labels,
    first: int | None = None,
    last: int | None = None,
    **options: Any,
) -> pd.DataFrame:
    """The index of pairs given as absolute periods, over [first, last] (default: the data's), as the
    CLI's index.csv lays it out: rows and labels as the library names them, numbers from the
    independent reference (tests/reference.py: dense dummy matrix, numpy.linalg.lstsq) where it
    covers the options (OLS), else the library's own (methods tested against their references
    elsewhere)."""
    prev_abs, recent_abs = np.asarray(prev_abs, dtype=np.int64), np.asarray(recent_abs, dtype=np.int64)
    first = int(min(prev_abs.min(), recent_abs.min())) if first is None else first
    last = int(max(prev_abs.max(), recent_abs.max())) if last is None else last
    t = last - first + 1
    labels = labels_of(np.arange(first, last + 1))
    res = gpu_hpi.estimate_index(
        prev_abs - first,
        recent_abs - first,
        np.asarray(y, dtype=np.float64),
        group,
        n_periods=t,
        backend="cpu",
        period_labels=labels,
        **options,
    )
    frame = res.to_frame()
    if set(options) - {"base_period", "min_pairs", "groups", "pooled"}:
        return frame
    ref = reference_index(
        prev_abs - first, recent_abs - first, np.asarray(y, dtype=np.float64), group, n_periods=t, **options
    )
    assert [str(g) for g in ref.groups] == list(res.groups.astype(str)), (ref.groups, res.groups)
    z = NormalDist().inv_cdf(0.975)
    log_index, se = ref.log_index.ravel(), ref.se.ravel()
    frame["log_index"], frame["se"], frame["index"] = log_index, se, 100.0 * np.exp(log_index)
    frame["ci_low"], frame["ci_high"] = 100.0 * np.exp(log_index - z * se), 100.0 * np.exp(log_index + z * se)
    frame["n_pairs"] = ref.period_pairs.ravel()
    return frame


def assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame, atol: float = 1e-9) -> None:
    assert list(got.columns) == COLUMNS
    assert len(got) == len(want)
    got = got.sort_values(["group", "period"], kind="stable").reset_index(drop=True)
    want = want.sort_values(["group", "period"], kind="stable").reset_index(drop=True)
    assert got["group"].astype(str).tolist() == want["group"].astype(str).tolist()
    assert got["period"].astype(str).tolist() == want["period"].astype(str).tolist()
    np.testing.assert_array_equal(got["n_pairs"].to_numpy(), want["n_pairs"].to_numpy())
    for col in FLOATS:
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=0, atol=atol, err_msg=col)


# --------------------------------------------------------------------------------------------------
# tests/reference.py's problems through the library and the reference


def estimate(p: Problem, group: Any = "float", **options: Any) -> gpu_hpi.IndexResult:
    """estimate_index on a problem; group "float" (NaN = missing), "str", "int", None or an array."""
    if isinstance(group, str):
        group = {"float": p.group_float, "str": p.group_str, "int": p.group_int}[group]()
    return gpu_hpi.estimate_index(p.prev, p.recent, p.y, group, n_periods=p.n_periods, backend="cpu", **options)


def reference(p: Problem, group: Any = "float", **options: Any) -> Any:
    """reference_index on a problem (group as for `estimate`)."""
    if isinstance(group, str):
        group = {"float": p.group_float, "str": p.group_str, "int": p.group_int}[group]()
    return reference_index(p.prev, p.recent, p.y, group, n_periods=p.n_periods, **options)


# --------------------------------------------------------------------------------------------------
# the seed schema, files and columns for the readers


SEED_SCHEMA = pa.schema(
    [
        ("group_id", pa.int64()),
        ("PrevYearMonth", pa.timestamp("ns")),
        ("RecentYearMonth", pa.timestamp("ns")),
        ("LogPriceDiff", pa.float64()),
        ("name", pa.string()),
        ("code", pa.dictionary(pa.int32(), pa.int16())),
    ]
)
SEED_ROLES = {"group": "group_id", "prev": "PrevYearMonth", "recent": "RecentYearMonth", "y": "LogPriceDiff"}


def write(path: Path, table: pa.Table, **kw: Any) -> Path:
    """The table as a parquet file at path (pq.write_table's options), and the path."""
    pq.write_table(table, path, **kw)
    return path


def stamps(unit: str, seed: int = 11) -> np.ndarray:
    """Timestamps over month ends, leap days and before 1970, with times of day."""
    rng = np.random.default_rng(seed)
    days = np.concatenate([rng.integers(-30_000, 40_000, 3000), [-1, 0, 31, 59, 60, 10_957, 11_016, 11_017]])
    seconds = rng.integers(0, 86_400, days.size).astype("timedelta64[s]")
    return (days.astype("datetime64[D]") + seconds).astype(f"datetime64[{unit}]")


def seed_pairs(n: int, seed: int, *, nulls: bool = True, groups: str = "int") -> pa.Table:
    """n pairs in the seed schema over 2014-01.., integer or string groups, with null periods and y."""
    rng = np.random.default_rng(seed)
    prev = rng.integers(0, 40, n)
    recent = prev + rng.integers(0, 12, n)  # some same-period pairs, dropped and counted
    months = np.datetime64("2014-01", "M")
    table = {
        "group_id": rng.integers(3, 9, n) if groups == "int" else rng.choice(["east", "west", "north"], n),
        "PrevYearMonth": (months + prev).astype("datetime64[ns]"),
        "RecentYearMonth": (months + recent).astype("datetime64[ns]"),
        "LogPriceDiff": rng.normal(0.01, 0.1, n),
    }
    out = pa.table(table)
    if nulls:  # null periods (dropped by the reader) and a null y (a non-finite y: dropped by the table)
        mask = rng.random(n) < 0.02
        out = out.set_column(1, "PrevYearMonth", pa.array(table["PrevYearMonth"], mask=mask))
        out = out.set_column(3, "LogPriceDiff", pa.array(table["LogPriceDiff"], mask=rng.random(n) < 0.01))
    return out


def write_dataset(
    directory: Path, n: int = 60_000, parts: int = 3, seed: int = 5, edit: Callable[[pd.DataFrame], None] | None = None
) -> pd.DataFrame:
    """A dataset of `parts` parquet files with small row groups; windows differ between files;
    `edit` changes the pairs (in place) before they are written."""
    group, prev, recent, y = SyntheticMarket.create(n, 48, 4, seed=seed).arrays()
    month = np.datetime64("2015-01", "M")
    frame = pd.DataFrame(
        {
            "group_id": group.astype(np.int64) + 100,
            "PrevYearMonth": (month + prev.astype(np.int64)).astype("datetime64[ns]"),
            "RecentYearMonth": (month + recent.astype(np.int64)).astype("datetime64[ns]"),
            "LogPriceDiff": y,
        }
    ).sort_values("RecentYearMonth", kind="stable")
    frame.loc[frame.index[::997], "LogPriceDiff"] = np.nan  # some invalid pairs
    if edit is not None:
        edit(frame)
    directory.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    for k in range(parts):
        frame.iloc[bounds[k] : bounds[k + 1]].to_parquet(
            directory / f"part-{k}.parquet", index=False, row_group_size=2_500
        )
    return frame


MONDAY_0 = datetime.date(1969, 12, 29)  # the Monday that starts week 0


def weekly_pairs(seed: int = 0, n: int = 5000) -> pd.DataFrame:
    """Pairs of dates over 2014-2015 (region, d0, d1, y), some within one ISO week."""
    rng = np.random.default_rng(seed)
    d0 = np.datetime64("2014-01-01") + rng.integers(0, 700, n)
    d1 = d0 + rng.integers(0, 200, n)  # some in the same week: same_period
    return pd.DataFrame(
        {
            "region": rng.integers(0, 3, n),
            "d0": d0.astype("datetime64[ns]"),
            "d1": d1.astype("datetime64[ns]"),
            "y": rng.normal(0, 0.1, n),
        }
    )
