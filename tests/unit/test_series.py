"""index.fill and index.seasonal_adjust (gpu_hpi/analysis/series.py) against references written here: numpy
interpolation and a plain loop for the fills, statsmodels' STL called directly for the adjustment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import compose_config
from statsmodels.tsa.seasonal import STL

from gpu_hpi.analysis.series import fill_gaps, seasonal_adjust
from gpu_hpi.app import pipeline
from gpu_hpi.errors import ConfigError

NAN = np.nan


def test_linear_fill_inside_the_series_only() -> None:
    log_index = np.array(
        [
            [NAN, 0.0, NAN, NAN, 0.3, 0.5, NAN],  # ends stay empty, the gap is interpolated
            [0.0, NAN, NAN, NAN, NAN, NAN, NAN],  # one estimate: nothing bounds a gap
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # nothing to fill
        ]
    )
    got, filled = fill_gaps(log_index, "linear")
    want = log_index.copy()
    want[0, 2:4] = np.interp([2, 3], [1, 4], [0.0, 0.3])
    np.testing.assert_allclose(got, want, equal_nan=True)
    assert filled.tolist() == [[False, False, True, True, False, False, False], [False] * 7, [False] * 7]


def test_carry_fill_repeats_the_last_estimate() -> None:
    rng = np.random.default_rng(2)
    log_index = rng.normal(size=(5, 30))
    log_index[rng.random((5, 30)) < 0.3] = NAN
    got, filled = fill_gaps(log_index, "carry")
    for row in range(5):
        known = np.flatnonzero(np.isfinite(log_index[row]))
        last = None
        for t in range(30):
            if np.isfinite(log_index[row, t]):
                last = log_index[row, t]
                assert got[row, t] == last and not filled[row, t]
            elif known.size >= 2 and known[0] < t < known[-1]:
                assert got[row, t] == last and filled[row, t]
            else:
                assert np.isnan(got[row, t]) and not filled[row, t]


def test_stl_equals_statsmodels_on_the_log_index() -> None:
    rng = np.random.default_rng(3)
    t = 72
    months = np.arange(t)
    series = np.cumsum(rng.normal(0.004, 0.003, t)) + 0.05 * np.sin(2 * np.pi * months / 12)
    log_index = np.vstack([series - series[5], np.where(months < 20, NAN, series), series[:] * NAN])
    log_index[1, 40] = NAN  # a gap inside: left unadjusted
    got, adjusted = seasonal_adjust(log_index, "month", base_period=5)
    want = series - STL(series, period=12, robust=True).fit().seasonal
    want -= want[5]
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-12)
    assert adjusted.tolist() == [True, False, False] and np.isnan(got[1:]).all()
    # the adjustment removes the seasonal swing: the month-of-year means flatten
    swing = np.ptp([np.diff(log_index[0])[m::12].mean() for m in range(12)])
    assert np.ptp([np.diff(got[0])[m::12].mean() for m in range(12)]) < swing / 3
    quarterly, ok = seasonal_adjust(log_index[:1, ::3], "quarter", base_period=0)
    assert ok.all() and np.isfinite(quarterly).all()
    _, ok = seasonal_adjust(log_index[:1, :23], "month", base_period=0)
    assert not ok.any()
    with pytest.raises(ConfigError, match="monthly or quarterly"):
        seasonal_adjust(log_index, "year", 0)


def write_pairs_with_a_gap(path: Path) -> Path:
    """Monthly pairs over 2014-01..2019-12 that never touch 2016-06: its index is unidentified."""
    rng = np.random.default_rng(4)
    n = 40_000
    i = rng.integers(0, 71, n)
    j = np.minimum(i + rng.integers(1, 24, n), 71)
    keep = (i != 29) & (j != 29) & (i < j)
    i, j = i[keep], j[keep]
    truth = np.cumsum(rng.normal(0.004, 0.01, 72)) + 0.02 * np.sin(2 * np.pi * np.arange(72) / 12)
    month = np.datetime64("2014-01", "M")
    frame = pd.DataFrame(
        {
            "group_id": rng.integers(0, 2, i.size),
            "PrevYearMonth": (month + i).astype("datetime64[ns]"),
            "RecentYearMonth": (month + j).astype("datetime64[ns]"),
            "LogPriceDiff": truth[j] - truth[i] + rng.normal(0, 0.05, i.size),
        }
    )
    frame.to_parquet(path, index=False)
    return path


def run(tmp_path: Path, *overrides: str) -> tuple[dict[str, Any], pd.DataFrame]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_pairs_with_a_gap(tmp_path / "pairs.parquet")
    cfg = compose_config("backend=cpu", "data=pairs", f"data.path={path}", "output.plot=false", *overrides)
    out = tmp_path / "out"
    summary = pipeline.run(cfg, out)
    return summary, pd.read_csv(out / "index.csv")


def test_pipeline_fill_and_adjust(tmp_path: Path) -> None:
    _, plain = run(tmp_path / "plain")
    assert "filled" not in plain and "index_sa" not in plain
    summary, frame = run(tmp_path / "both", "index.fill=linear", "index.seasonal_adjust=stl")
    gap = frame["period"] == "2016-06"
    assert plain.loc[gap, "log_index"].isna().all()
    assert frame.loc[gap, "filled"].all() and not frame.loc[~gap, "filled"].any()
    assert summary["filled_periods"] == int(gap.sum()) == 3  # two regions and ALL
    assert frame.loc[gap, "se"].isna().all()  # no standard error for a filled period
    for group, rows in frame.groupby("group"):
        series = rows["log_index"].to_numpy()
        k = int(np.flatnonzero(rows["period"].to_numpy() == "2016-06")[0])
        assert series[k] == pytest.approx((series[k - 1] + series[k + 1]) / 2, abs=1e-12), group
        assert rows["index_sa"].notna().all() and rows["index_sa"].iloc[0] == pytest.approx(100.0)
    # the estimates themselves are unchanged
    np.testing.assert_allclose(frame.loc[~gap, "log_index"], plain.loc[~gap, "log_index"], rtol=0, atol=0)
    assert sorted(summary["seasonal_adjust"]["adjusted"]) == ["0", "1", "ALL"]


def test_seasonal_adjustment_refused_for_years_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="monthly or quarterly"):
        run(tmp_path, "index.periodicity=year", "index.seasonal_adjust=stl")
