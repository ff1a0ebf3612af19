"""The index as a series (analysis/series.py) against references written here: numpy interpolation and
a plain loop for the gap fills, statsmodels' STL called directly for the seasonal adjustment, plain
loops for the changes' volatility and the smoothed index; the long frame of diagnostics.csv."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostics_reference import (
    CPU,
    EMPTY,
    RARE,
    Data,
    T,
    fit_cpu,
    ref_volatility,
)
from statsmodels.tsa.seasonal import STL

import gpu_hpi
from gpu_hpi.analysis.revision import revision
from gpu_hpi.analysis.series import diagnostics_frame, fill_gaps, period_changes, seasonal_adjust, smooth, volatility
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


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_fixture_shapes(data: Data, result: gpu_hpi.IndexResult) -> None:
    """The fixture has what the tests rely on: a NaN period in group 30, RARE identified in group 20."""
    assert [str(g) for g in result.groups] == ["10", "20", "30", "ALL"]
    assert np.isnan(result.log_index[2, EMPTY]) and np.isfinite(np.delete(result.log_index[2], EMPTY)).all()
    assert np.isfinite(result.log_index[[0, 1, 3]]).all()
    touches = (data.group == 20) & ((data.prev == RARE) | (data.recent == RARE))
    assert sorted(np.flatnonzero(touches)) == sorted(data.rare_positions)


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize("window", [2, 3, 5])
def test_volatility_matches_a_plain_loop(result: gpu_hpi.IndexResult, window: int) -> None:
    got = volatility(result, window)
    want = ref_volatility(result.index, window)
    assert got.shape == result.log_index.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.isnan(got[:, :window]).all() and np.isfinite(got[0, window:]).all()
    # the NaN period of group 30 blanks every window holding the change into or out of it
    assert np.isnan(got[2, EMPTY : EMPTY + window + 1]).all()
    assert np.isfinite(got[2, EMPTY + window + 1 :]).all()
    changes = period_changes(result)
    np.testing.assert_allclose(changes[:, 1:], 100 * (result.index[:, 1:] / result.index[:, :-1] - 1), rtol=1e-12)
    assert np.isnan(changes[:, 0]).all()


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize("window", [1, 0, -3])
def test_volatility_window_too_small(result: gpu_hpi.IndexResult, window: int) -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="volatility window"):
        volatility(result, window)


def ref_smooth(index: np.ndarray, window: int) -> np.ndarray:
    g, t = index.shape
    half = window // 2
    out = np.full((g, t), np.nan)
    for r in range(g):
        for s in range(t):
            values = [v for v in index[r, max(0, s - half) : min(t, s + half + 1)] if np.isfinite(v)]
            if values:
                out[r, s] = sum(values) / len(values)
    return out


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize("window", [3, 5, 25])
def test_smooth_matches_a_plain_loop(result: gpu_hpi.IndexResult, window: int) -> None:
    got = smooth(result, window)
    want = ref_smooth(result.index, window)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert np.isfinite(got).all()  # the NaN period of group 30 is skipped, not propagated
    # the ends average the shorter, still centred windows
    np.testing.assert_allclose(got[0, 0], result.index[0, : min(T, window // 2 + 1)].mean(), rtol=1e-12)
    np.testing.assert_allclose(got[0, -1], result.index[0, max(0, T - 1 - window // 2) :].mean(), rtol=1e-12)


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize("window", [0, 1, 2, 4, 6])
def test_smooth_window_must_be_odd_and_at_least_3(result: gpu_hpi.IndexResult, window: int) -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="odd"):
        smooth(result, window)


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_diagnostics_frame(data: Data, result: gpu_hpi.IndexResult) -> None:
    table = gpu_hpi.build_cell_table(data.pairs(), CPU)
    vol = volatility(result, 3)
    rev = revision(table, fit_cpu("bmn", 0), result)
    frame = diagnostics_frame(result, vol, rev)
    assert list(frame.columns) == [
        "group",
        "period",
        "change_pct",
        "volatility",
        "revision_mean",
        "revision_median",
        "n_revisions",
    ]
    assert len(frame) == 4 * T
    assert frame["group"].tolist() == [g for g in ("10", "20", "30", "ALL") for _ in range(T)]
    assert frame["period"].tolist() == [str(t) for t in range(T)] * 4
    row = frame[(frame["group"] == "20") & (frame["period"] == "5")].iloc[0]
    assert row["volatility"] == vol[1, 5] and row["revision_median"] == rev.median[1, 5]
    assert row["n_revisions"] == rev.count[1, 5]
    np.testing.assert_array_equal(frame["change_pct"].to_numpy(), period_changes(result).ravel())
    without = diagnostics_frame(result, vol, None)
    assert list(without.columns) == ["group", "period", "change_pct", "volatility"]
