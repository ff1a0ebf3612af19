"""hpiR's in-sample and forecast accuracy and the vintages (gpu_hpi.analysis) against references
written here: per-pair errors from the full index, a refit on the data through t - 1 for each pair
sold in t, and fit_index on each truncated data set."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import compose_config

import gpu_hpi
from gpu_hpi.analysis.accuracy import forecast_errors, in_sample_errors
from gpu_hpi.analysis.refit import Refit
from gpu_hpi.analysis.revision import vintage_indices, vintages_frame
from gpu_hpi.app import pipeline
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = gpu_hpi.resolve_backend("cpu")
T = 16


def problem(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 3000
    group = rng.integers(0, 3, n)
    prev = rng.integers(0, T - 1, n)
    recent = np.minimum(prev + 1 + rng.geometric(0.3, n), T - 1)
    beta = np.cumsum(rng.normal(0.01, 0.02, (3, T)), axis=1)
    y = beta[group, recent] - beta[group, prev] + rng.normal(0, 0.05, n)
    return group, prev, recent, y


def fit(group: np.ndarray, prev: np.ndarray, recent: np.ndarray, y: np.ndarray) -> gpu_hpi.IndexResult:
    pairs = gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=T, backend=CPU)
    return gpu_hpi.fit_index(gpu_hpi.build_cell_table(pairs, CPU), backend=CPU, min_pairs=1)


def stats(errors: np.ndarray) -> tuple[float, float, int]:
    return float(np.mean(errors)), float(np.sqrt(np.mean(errors**2))), errors.size


def check(frame: pd.DataFrame, group: str, want: tuple[float, float, int]) -> None:
    row = frame[frame["group"] == group].iloc[0]
    assert row["mean_error"] == pytest.approx(want[0], abs=1e-10)
    assert row["rmse"] == pytest.approx(want[1], rel=1e-9)
    assert row["n_scored"] == want[2]


def test_in_sample_error_per_pair_reference() -> None:
    group, prev, recent, y = problem(1)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=T, backend=CPU), CPU)
    result = gpu_hpi.fit_index(table, backend=CPU, min_pairs=1)
    frame = in_sample_errors(table, Refit(MethodOptions(), 1, True, True), result)
    assert frame["kind"].unique().tolist() == ["in_sample"]
    rows = {str(g): k for k, g in enumerate(result.groups)}
    for g in range(3):
        li = result.log_index[rows[str(g)]]
        mine = group == g
        check(frame, str(g), stats(y[mine] - (li[recent[mine]] - li[prev[mine]])))
    pooled = result.log_index[rows["ALL"]]
    check(frame, "ALL", stats(y - (pooled[recent] - pooled[prev])))


def test_forecast_error_refit_reference() -> None:
    """Each pair sold in t >= 2 predicted by fit_index on the pairs completed by t - 1 (the
    published vintage), the level at t taken as that at t - 1."""
    group, prev, recent, y = problem(2)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=T, backend=CPU), CPU)
    result = gpu_hpi.fit_index(table, backend=CPU, min_pairs=1)
    refit = Refit(MethodOptions(), 1, True, True)
    stack = vintage_indices(table, refit, result)
    frame = forecast_errors(table, refit, result, stack)
    errors: dict[str, list[float]] = {"0": [], "1": [], "2": [], "ALL": []}
    unscored: dict[str, int] = dict.fromkeys(errors, 0)
    for t in range(T):
        sold = recent == t
        if t < 2:
            for g in range(3):
                unscored[str(g)] += int((sold & (group == g)).sum())
            unscored["ALL"] += int(sold.sum())
            continue
        before = recent <= t - 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
            vintage = fit(group[before], prev[before], recent[before], y[before])
        rows = {str(g): k for k, g in enumerate(vintage.groups)}
        for name in errors:
            mine = sold if name == "ALL" else sold & (group == int(name))
            if name not in rows:  # no pair of the region completed yet: no forecast
                unscored[name] += int(mine.sum())
                continue
            li = vintage.log_index[rows[name]]
            d = li[t - 1] - li[prev[mine]]
            ok = np.isfinite(d)
            errors[name].extend((y[mine] - d)[ok].tolist())
            unscored[name] += int((~ok).sum())
    for name, values in errors.items():
        check(frame, name, stats(np.asarray(values)))
        assert frame.loc[frame["group"] == name, "n_unscored"].iloc[0] == unscored[name]


def test_vintages_frame_is_each_truncated_fit() -> None:
    group, prev, recent, y = problem(3)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=T, backend=CPU), CPU)
    result = gpu_hpi.fit_index(table, backend=CPU, min_pairs=1)
    frame = vintages_frame(result, vintage_indices(table, Refit(MethodOptions(), 1, True, True), result))
    for v in (3, 9, T - 1):
        keep = recent <= v
        want = fit(group[keep], prev[keep], recent[keep], y[keep])
        got = frame[frame["vintage"] == str(v)]
        for g, name in enumerate(want.groups):
            series = got[got["group"] == str(name)].set_index("period")["log_index"]
            expected = want.log_index[g, : v + 1]
            finite = np.isfinite(expected)
            assert series.index.tolist() == [str(p) for p in np.arange(v + 1)[finite]]
            np.testing.assert_allclose(series.to_numpy(), expected[finite], rtol=1e-9, atol=1e-12)


def test_pipeline_writes_the_kinds_and_vintages(tmp_path: Path) -> None:
    cfg = compose_config(
        "backend=cpu",
        "data.n_pairs=30000",
        "output.plot=false",
        "diagnostics.in_sample_error=true",
        "diagnostics.forecast_error=true",
        "diagnostics.vintages=true",
        "diagnostics.accuracy_folds=3",
    )
    summary = pipeline.run(cfg, tmp_path)
    accuracy = pd.read_csv(tmp_path / "accuracy.csv")
    assert accuracy["kind"].unique().tolist() == ["kfold", "in_sample", "forecast"]
    assert (accuracy.loc[accuracy["kind"] != "kfold", "rmse"] > 0).all()
    diagnostics = summary["diagnostics"]
    assert diagnostics["accuracy_in_sample"]["n_scored"] > 0 and diagnostics["accuracy_forecast"]["n_scored"] > 0
    stored = pd.read_parquet(tmp_path / "vintages.parquet")
    assert list(stored.columns) == ["vintage", "group", "period", "log_index", "index"]
    assert stored["vintage"].nunique() == 122
