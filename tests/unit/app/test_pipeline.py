"""The job of `python -m gpu_hpi` in-process: pipeline.run on a configuration from hydra.compose, or
`helpers.run_app` (__main__.run_job as the command line calls it, with its exit code and output).
Here the outputs, summary and stages of a run, which indices it estimates, and the refusals: exit 2,
one line, no traceback, no outputs. The job on pair files, methods and diagnostics, sale records,
stored cells, a Dask cluster and the GPU branch: the other test_pipeline_*.py files."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import (
    COLUMNS,
    FLOATS,
    OUTPUTS,
    START_MONTH,
    SUMMARY_KEYS,
    assert_frames_equal,
    compose_config,
    expected_frame,
    make_pairs,
    month_labels,
    noisy_short_precise_long,
    q,
    run_app,
    seed_frame,
)
from matplotlib.image import imread

from gpu_hpi import config as C
from gpu_hpi.app import pipeline
from gpu_hpi.backend.memory import check_memory_sizes
from gpu_hpi.errors import ConfigError, DataError
from gpu_hpi.synthetic import SyntheticMarket


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    C.register_configs()


def config(*overrides: str) -> Any:
    synthetic = [] if "data=pairs" in overrides else ["data.n_pairs=20000"]
    return compose_config(*synthetic, "output.plot=false", *overrides)


def write_pairs(path: Path, prev: list[str], recent: list[str], group: list[int]) -> Path:
    import numpy as np
    import pandas as pd

    n = len(prev)
    frame = pd.DataFrame(
        {
            "group_id": group,
            "PrevYearMonth": pd.to_datetime(prev),
            "RecentYearMonth": pd.to_datetime(recent),
            "LogPriceDiff": np.linspace(0.01, 0.1, n),
        }
    )
    frame.to_parquet(path, index=False)
    return path


# --------------------------------------------------------------------------------------------------
# a run's outputs, summary and stages


def test_default_synthetic_run(tmp_path: Path) -> None:
    n, t, g, seed = 50_000, 123, 3, 20140101
    run = run_app(tmp_path, f"data.n_pairs={n}", f"data.n_groups={g}", f"data.seed={seed}", plot=True).ok()
    for name in OUTPUTS:
        assert (run.dir / name).is_file() and (run.dir / name).stat().st_size > 0, name
    assert (run.dir / "index.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run.dir.glob(".*.tmp")), "temporary files left behind"

    csv = run.csv
    assert list(csv.columns) == COLUMNS
    assert list(run.frame.columns) == COLUMNS
    assert sorted(csv["group"].unique()) == ["0", "1", "2", "ALL"]
    periods = csv.loc[csv["group"] == "ALL", "period"].tolist()
    assert periods == month_labels(np.arange(START_MONTH, START_MONTH + t)).tolist()
    # the CSV and the parquet hold the same numbers (the CSV with 10 significant digits)
    pqf = run.frame
    for col in FLOATS:
        np.testing.assert_allclose(csv[col].to_numpy(float), pqf[col].to_numpy(float), rtol=1e-9, atol=1e-12)

    s = run.summary
    assert set(s) >= SUMMARY_KEYS, SUMMARY_KEYS - set(s)
    assert s["n_pairs_read"] == n and s["n_pairs_used"] == n and s["dropped"] == {}
    assert (s["method"], s["solver"], s["n_periods"], s["n_groups"]) == ("bmn", "normal", t, g)
    assert s["backend"] in ("cpu", "gpu") and s["device"].startswith(s["backend"].upper())
    assert (s["first_period"], s["last_period"], s["base_period"]) == ("2014-01", "2024-03", "2014-01")
    assert set(s["outputs"]) == set(OUTPUTS)
    assert s["peak_host_bytes"] > 0
    if s["backend"] == "cpu":
        assert s["peak_device_bytes"] is None
    else:
        assert s["peak_device_bytes"] > 0
    assert all(v >= 0 for v in s["timings_s"].values()) and "solve" in s["timings_s"]

    # The error against the truth, recomputed here from the market's true index: it must agree with
    # the summary, and be what 50k pairs can deliver (se ~0.01 per month; the max over 369 estimates
    # is about 3 se, seeds 1..6 give 0.020-0.034).
    market = SyntheticMarket.create(n, t, g, seed, 0.1, 30.0)
    est = pqf[pqf["group"] != "ALL"]
    log_index = est["log_index"].to_numpy().reshape(g, t)
    se = est["se"].to_numpy().reshape(g, t)
    err = np.abs(log_index - market.true_log_index)
    assert s["max_abs_error_vs_true_log_index"] == pytest.approx(err.max(), abs=1e-12)
    assert s["max_abs_error_vs_true_log_index"] < 0.06
    assert np.max(err[:, 1:] / se[:, 1:]) < 5.0  # errors consistent with the reported standard errors

    # the same pairs through the library
    grp, prev, recent, y = market.arrays()
    want = expected_frame(prev.astype(np.int64) + START_MONTH, recent.astype(np.int64) + START_MONTH, y, grp)
    assert_frames_equal(pqf, want)

    assert f"{n:,} of {n:,} pairs" in run.stdout
    assert "2014-01..2024-03" in run.stdout and "max |error| against the true log index" in run.stdout


def test_startup_is_the_first_stage_reported(tmp_path: Path) -> None:
    cfg = compose_config("data.n_pairs=20000", "output.plot=false", "backend=cpu")
    summary = pipeline.run(cfg, tmp_path, startup_s=1.25)
    stages = summary["timings_s"]
    assert next(iter(stages)) == "startup" and stages["startup"] == 1.25
    assert {"read_and_table", "solve", "diagnostics", "write"} <= set(stages)
    assert json.loads((tmp_path / "summary.json").read_text())["timings_s"]["startup"] == 1.25
    assert "startup" not in pipeline.run(cfg, tmp_path / "again")["timings_s"]


def run(tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_config("backend=cpu", "data.n_pairs=30000", *overrides)
    return pipeline.run(cfg, tmp_path)


def test_charts_only_when_asked(tmp_path: Path) -> None:
    summary = run(tmp_path / "default")
    assert "regions.png" not in summary["outputs"] and "diagnostics.png" not in summary["outputs"]
    summary = run(tmp_path / "all", "output.plot_regions=true", "output.plot_diagnostics=true")
    assert {"index.png", "regions.png", "diagnostics.png"} <= set(summary["outputs"])
    regions = imread(tmp_path / "all" / "regions.png")
    # 17 regions: ceil(sqrt(17)) = 5 columns, 4 rows of 2.6 x 1.9 inch panels with the title and the
    # legend (13 x 8.5 inches): neither a strip nor a tower
    assert 0.55 * regions.shape[1] < regions.shape[0] < 0.8 * regions.shape[1]
    diagnostics = imread(tmp_path / "all" / "diagnostics.png")
    assert diagnostics.shape[1] == 1100 and diagnostics.shape[0] == round(2 * 3.2 * 110)


def test_a_cpu_run_says_nothing_of_memory_settings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gpu_hpi"):
        pipeline.run(config("backend=cpu"), tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "gpu_hpi"]
    assert any(line.startswith("backend cpu") for line in lines)
    assert not any("memory" in line for line in lines)


def test_regions_all_skipped_report_the_pooled_index_pairs(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "All-NaN slice" leaking out
        warnings.simplefilter("ignore", UserWarning)
        summary = pipeline.run(config("backend=cpu", "data.n_pairs=1000"), tmp_path)
    assert summary["n_groups"] == 17 and len(summary["skipped_groups"]) == 17
    assert summary["n_pairs_used"] == 0 and summary["n_pairs_used_pooled"] == 1000
    assert "max_abs_error_vs_true_log_index" not in summary


def test_zero_weight_pairs_counted_once(tmp_path: Path) -> None:
    """Case-Shiller's weight-0 pairs are reported as dropped, and still read once: n_pairs_read is
    the file's rows, n_pairs_used what the regions' fit kept."""
    import numpy as np
    import pandas as pd

    prev, recent, y = noisy_short_precise_long()
    month = np.datetime64("2014-01", "M")
    frame = pd.DataFrame(
        {
            "group_id": 1,
            "PrevYearMonth": (month + prev).astype("datetime64[ns]"),
            "RecentYearMonth": (month + recent).astype("datetime64[ns]"),
            "LogPriceDiff": y,
        }
    )
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    cfg = config(
        "backend=cpu", "data=pairs", f"data.path={tmp_path / 'p.parquet'}", "method=case_shiller", "index.min_pairs=1"
    )
    with pytest.warns(UserWarning, match="zero_weight"):
        summary = pipeline.run(cfg, tmp_path / "out")
    lost = summary["dropped"]["zero_weight"]
    assert lost > 0 and summary["n_pairs_read"] == len(frame)
    assert summary["n_pairs_used"] == len(frame) - lost


def test_forecast_error_for_a_pair_method_says_why(tmp_path: Path) -> None:
    cfg = config("backend=cpu", "method=robust", "diagnostics.forecast_error=true", "diagnostics.revision=false")
    summary = pipeline.run(cfg, tmp_path)
    assert summary["diagnostics"]["accuracy_forecast"].startswith("not available for method=robust")
    assert "revision" not in summary["diagnostics"]


# --------------------------------------------------------------------------------------------------
# solvers and which indices


def test_iterative_solvers_match_normal_equations(tmp_path: Path) -> None:
    pairs = make_pairs(n=6000, seed=15)
    df = seed_frame(pairs, group="str")
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=2000)
    runs = {
        s: run_app(tmp_path, "data=pairs", f"data.path={q(path)}", f"solver={s}", "data.batch_rows=1500", name=s).ok()
        for s in ("normal", "lsqr", "lsmr")
    }
    reference = runs["normal"].frame
    for name in ("lsqr", "lsmr"):
        assert_frames_equal(runs[name].frame, reference, atol=1e-8)
        s = runs[name].summary
        assert s["solver"] == name
        for part in ("groups", "pooled"):
            info = s["solver_info"][part]
            assert info["solver"] == name
            assert isinstance(info["iterations"], int) and info["iterations"] > 0
            assert "iteration limit" not in info["stop_reason"]
    assert "iterations" not in runs["normal"].summary["solver_info"]["groups"]


@pytest.fixture
def good_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "good.parquet"
    seed_frame(make_pairs(n=2000, seed=16), group="int").to_parquet(path, index=False)
    return path


def test_groups_and_pooled_switches(tmp_path: Path, good_parquet: Path) -> None:
    base = ("data=pairs", f"data.path={q(good_parquet)}")
    full = run_app(tmp_path, *base, name="full").ok().frame
    only_all = run_app(tmp_path, *base, "index.groups=false", name="nogroups").ok()
    no_all = run_app(tmp_path, *base, "index.pooled=false", name="nopooled").ok()
    no_col = run_app(tmp_path, *base, "data.columns.group=null", name="nocolumn").ok()

    assert set(full["group"]) == {"0", "1", "2", "ALL"}
    assert set(only_all.frame["group"]) == {"ALL"} and len(only_all.frame) == 36
    assert set(no_all.frame["group"]) == {"0", "1", "2"} and len(no_all.frame) == 3 * 36
    assert set(no_col.frame["group"]) == {"ALL"} and len(no_col.frame) == 36
    pooled = full[full["group"] == "ALL"].reset_index(drop=True)
    assert_frames_equal(only_all.frame, pooled)
    assert_frames_equal(no_col.frame, pooled)
    assert_frames_equal(no_all.frame, full[full["group"] != "ALL"].reset_index(drop=True))
    assert no_col.summary["n_groups"] == 0 and only_all.summary["n_groups"] == 0
    assert no_all.summary["n_groups"] == 3


# --------------------------------------------------------------------------------------------------
# refusals: exit 2, one line, no traceback, no outputs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("index.min_pairs=-5", "index.min_pairs must be at least 1"),
        ("solver.iter_lim=-1", "solver.iter_lim must be at least 1"),
        ("solver.iter_lim=0", "solver.iter_lim must be at least 1"),
        ("solver.tol=1", "solver.tol must be between 0 and 1"),
        ("solver.tol=-1e-9", "solver.tol must be between 0 and 1"),
        ("method.max_iter=0", "method.max_iter at least 1"),
        ("index.min_pairs=0", "index.min_pairs must be at least 1"),
        ("output.plot_groups=-1", "output.plot_groups must be 0 or more"),
        ("memory.maximum_pool_size=banana", "memory.maximum_pool_size: cannot read memory size 'banana'"),
        ("memory.initial_pool_size=12XB", "memory.initial_pool_size: unknown unit"),
    ],
)
def test_refused_before_reading(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        pipeline.run(config("backend=cpu", override), tmp_path)
    assert "\n" not in str(info.value)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing written


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize(
    "override, fragment",
    [
        ("data.n_pairs=-5", "synthetic"),
        ("data.n_periods=1", "synthetic"),
        ("data.noise_sd=-1", "noise_sd >= 0"),
        ("output.ci_level=1.0", "ci_level"),
        ("method.huber_c=0", "huber_c"),
        ("index.base_period=2017-13", "2017-13"),
    ],
)
def test_option_values_that_cannot_work(tmp_path: Path, override: str, fragment: str) -> None:
    run_app(tmp_path, "data.n_pairs=2000", override).assert_failed(fragment)


def test_error_missing_file(tmp_path: Path) -> None:
    run_app(tmp_path, "data=pairs", f"data.path={q(tmp_path / 'nope.parquet')}", plot=True).assert_failed(
        "nope.parquet"
    )


def test_error_directory_without_parquet(tmp_path: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "notes.txt").write_text("no parquet here\n")
    run_app(tmp_path, "data=pairs", f"data.path={q(d)}", plot=True).assert_failed("no .parquet files", "empty")


def test_error_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}", plot=True).assert_failed("corrupt.parquet")


def test_error_missing_column(tmp_path: Path, good_parquet: Path) -> None:
    line = run_app(
        tmp_path, "data=pairs", f"data.path={q(good_parquet)}", "data.columns.y=price_ratio", plot=True
    ).assert_failed("price_ratio")
    found = line.split("price_ratio", 1)[1]
    for col in ("group_id", "PrevYearMonth", "RecentYearMonth", "LogPriceDiff"):
        assert col in found, line


def test_error_y_column_of_strings(tmp_path: Path) -> None:
    df = seed_frame(make_pairs(n=1000, seed=17), group="int")
    df["LogPriceDiff"] = np.where(np.arange(len(df)) % 2, "up", "down")
    path = tmp_path / "strings.parquet"
    df.to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}", plot=True).assert_failed("LogPriceDiff", "numeric")


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_error_gpu_backend_without_cupy(tmp_path: Path) -> None:
    run_app(tmp_path, "backend=gpu", "data.n_pairs=1000", plot=True).assert_failed("CuPy", "pip install")


def test_error_base_period_outside_window(tmp_path: Path, good_parquet: Path) -> None:
    run_app(
        tmp_path, "data=pairs", f"data.path={q(good_parquet)}", "index.base_period=2020-01", plot=True
    ).assert_failed("2020-01", "2014-01..2016-12")


def test_error_float_period_column(tmp_path: Path) -> None:
    df = seed_frame(make_pairs(n=1000, seed=18), group="int")
    df["PrevYearMonth"] = df["PrevYearMonth"].astype(np.int64).astype(float)
    path = tmp_path / "floats.parquet"
    df.to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}", plot=True).assert_failed("PrevYearMonth", "double")


def test_no_usable_pair_is_an_error_with_the_counts(tmp_path: Path) -> None:
    path = write_pairs(
        tmp_path / "p.parquet", ["2014-01-05"] * 4 + ["2014-05-01"], ["2014-02-20"] * 4 + ["2014-01-01"], [1] * 5
    )
    cfg = config("backend=cpu", "data=pairs", f"data.path={path}", "index.periodicity=quarter")
    with pytest.raises(
        DataError, match=r"none of the input's pairs is usable \(dropped: same_period 4, prev_not_before_recent 1\)"
    ):
        pipeline.run(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()


def test_no_index_off_the_base_period_is_an_error(tmp_path: Path) -> None:
    # every pair between 2014-03 and later: nothing links the first period (the base) to them
    path = write_pairs(tmp_path / "p.parquet", ["2014-03-01"] * 3, ["2014-05-01"] * 3, [1] * 3)
    cfg = config("backend=cpu", "data=pairs", f"data.path={path}", "data.start=2014-01", "index.min_pairs=1")
    with pytest.raises(DataError, match="no index could be estimated: 3 pairs in the cell table, no period linked"):
        pipeline.run(cfg, tmp_path / "out")


def test_refusals_keep_their_cause_for_debug(tmp_path: Path) -> None:
    """The one-line error hides the library's exception, but keeps it as the cause: debug=true
    re-raises with the whole chain."""
    from gpu_hpi.io.files import parquet_file

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match="cannot read") as read:
        parquet_file(str(bad))
    assert read.value.__cause__ is not None
    with pytest.raises(ConfigError, match="cannot read memory size") as size:
        check_memory_sizes("lots", None)
    assert isinstance(size.value.__cause__.__cause__, ValueError)  # through the sized option's own error
    cfg = config("data=pairs", f"data.path={bad}", "debug=true")
    with pytest.raises(DataError) as run:
        pipeline.run(cfg, tmp_path / "out")
    assert run.value.__cause__ is not None
