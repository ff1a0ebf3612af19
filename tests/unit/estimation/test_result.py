"""IndexResult (estimation/result.py): the frame's columns and confidence bounds, other confidence
levels, the groups' frame, period labels."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import estimate
from reference import (
    Problem,
)
from scipy.stats import norm

import gpu_hpi
from gpu_hpi.estimation.result import INDEX_COLUMNS

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def test_to_frame_columns_and_confidence_bounds(problem: Problem) -> None:
    result = estimate(problem)
    frame = result.to_frame()
    assert list(frame.columns) == INDEX_COLUMNS
    assert list(frame.columns) == ["group", "period", "log_index", "index", "se", "ci_low", "ci_high", "n_pairs"]
    g, t = result.log_index.shape
    assert len(frame) == g * t
    log, se = frame["log_index"].to_numpy(), frame["se"].to_numpy()
    z = norm.ppf(0.975)
    assert z == pytest.approx(1.96, abs=1e-3)
    np.testing.assert_allclose(frame["index"], 100 * np.exp(log), rtol=1e-14, equal_nan=True)
    np.testing.assert_allclose(frame["ci_low"], 100 * np.exp(log - z * se), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(frame["ci_high"], 100 * np.exp(log + z * se), rtol=1e-12, equal_nan=True)
    positive = se > 0
    assert positive.sum() > 10
    assert (frame["ci_low"][positive] < frame["index"][positive]).all()
    assert (frame["index"][positive] < frame["ci_high"][positive]).all()
    base = (frame["period"] == "0") & np.isfinite(log)
    assert base.sum() == (~result.skipped).sum()
    assert (frame.loc[base, ["index", "ci_low", "ci_high"]].to_numpy() == 100.0).all()
    nan = np.isnan(log)
    assert frame.loc[nan, ["index", "se", "ci_low", "ci_high"]].isna().all().all()
    np.testing.assert_array_equal(frame["n_pairs"], result.period_pairs.ravel())
    assert frame["group"].tolist()[::t] == [str(x) for x in result.groups]


def test_conf_int_levels(problem: Problem) -> None:
    result = estimate(problem)
    lo90, hi90 = result.conf_int(0.90)
    lo99, hi99 = result.conf_int(0.99)
    positive = result.se > 0
    assert (lo99[positive] < lo90[positive]).all() and (hi90[positive] < hi99[positive]).all()
    z = norm.ppf(0.95)
    np.testing.assert_allclose(hi90, 100 * np.exp(result.log_index + z * result.se), rtol=1e-12)


def test_group_frame(problem: Problem) -> None:
    result = estimate(problem)
    frame = result.group_frame()
    assert list(frame.columns) == ["group", "n_pairs", "n_used", "n_params", "sigma2", "r2", "skipped"]
    assert frame["group"].tolist() == [str(x) for x in result.groups]
    np.testing.assert_array_equal(frame["n_used"], result.n_used)
    np.testing.assert_array_equal(frame["skipped"], result.skipped)
    np.testing.assert_allclose(frame["sigma2"], result.sigma2, equal_nan=True)


def test_period_labels(connected: Problem) -> None:
    labels = [f"2020-{m:02d}" for m in range(1, connected.n_periods + 1)]
    result = estimate(connected, group=None, period_labels=labels)
    assert list(result.periods) == labels
    assert result.to_frame()["period"].tolist() == labels
    with pytest.raises(gpu_hpi.ConfigError):
        estimate(connected, group=None, period_labels=labels[:-1])
