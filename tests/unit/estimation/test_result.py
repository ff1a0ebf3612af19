"""IndexResult (estimation/result.py): the frame's columns and confidence bounds, other confidence
levels, the groups' frame, period labels, the notebook's HTML summary (_repr_html_); plot() and its
Figure: test_charts.py."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import estimate, noisy_short_precise_long
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
    for level in (-0.5, 0.0, 1.0, 1.5):  # at -0.5 the bounds came out swapped, without a word
        with pytest.raises(gpu_hpi.ConfigError, match="confidence level must be between 0 and 1"):
            result.conf_int(level)


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


def _cells(html: str, header: str) -> str:
    """The value of the summary row `header`."""
    start = html.index(f">{header}</th><td>") + len(f">{header}</th><td>")
    return html[start : html.index("</td>", start)]


def test_repr_html_summarises_the_result() -> None:
    rng = np.random.default_rng(0)
    # "a<b": pairs within periods 0-7 and, apart, within 12-23 (not connected to the base period);
    # "c&d": connected throughout; "tiny": 3 pairs, below min_pairs
    early = rng.integers(0, 7, 300)
    late = rng.integers(12, 23, 200)
    wide = rng.integers(0, 23, 2000)
    prev = np.r_[early, late, wide, [0, 1, 2]]
    recent = np.r_[
        np.minimum(early + 1 + rng.integers(0, 3, 300), 7),
        np.minimum(late + 1 + rng.integers(0, 3, 200), 23),
        np.minimum(wide + 1 + rng.integers(0, 5, 2000), 23),
        [3, 4, 5],
    ]
    group = np.array(["a<b"] * 500 + ["c&d"] * 2000 + ["tiny"] * 3, dtype=object)
    labels = np.array([f"{2010 + k // 12}-{k % 12 + 1:02d}" for k in range(24)])
    result = gpu_hpi.estimate_index(
        prev, recent, rng.normal(0, 0.1, prev.size), group, n_periods=24, backend="cpu", min_pairs=10,
        period_labels=labels, base_period=1,
    )  # fmt: skip
    html = result._repr_html_()
    assert _cells(html, "method") == "bmn (normal solver)"
    assert _cells(html, "periods") == "24: 2010-01 to 2011-12"
    assert _cells(html, "base period (= 100)") == "2010-02"
    assert _cells(html, "regions") == "3 (1 not estimated: too few pairs), and the pooled index (ALL)"
    assert _cells(html, "pairs, regions") == (
        "2,503 in, 2,300 used; left out: 3 in groups with too few pairs; 200 not connected to the base period"
    )
    assert _cells(html, "pairs, pooled index") == "2,503 in, 2,503 used; left out: none"
    # the first / last two periods of each series, the pooled one first, then by pairs; names escaped
    assert "<th>2010-01</th><th>2010-02</th><th>&hellip;</th><th>2011-11</th><th>2011-12</th>" in html
    rows = [row.split("</th>")[0] for row in html.split("<tr><th style='text-align:left'>")[1:]]
    assert rows[-4:] == ["ALL", "c&amp;d", "a&lt;b", "tiny"] and "a<b" not in html and "c&d" not in html
    pooled = result.index[result.groups == "ALL"][0]
    assert f"<th style='text-align:left'>ALL</th><td>{pooled[0]:.1f}</td><td>100.0</td>" in html
    assert f"<td>{pooled[-2]:.1f}</td><td>{pooled[-1]:.1f}</td></tr>" in html
    late_part = "<th style='text-align:left'>a&lt;b</th><td>"
    assert html.split(late_part)[1].split("</tr>")[0].endswith("<td>&ndash;</td><td>&ndash;</td>")


def test_repr_html_counts_case_shillers_weight_0_pairs() -> None:
    prev, recent, y = noisy_short_precise_long()
    result = gpu_hpi.estimate_index(prev, recent, y, n_periods=40, backend="cpu", method="case_shiller")
    zero = result.solver_info["groups"]["zero_weight_pairs"]
    assert zero > 0 and int(result.n_pairs[0] - result.n_used[0]) == zero
    html = result._repr_html_()
    assert _cells(html, "method") == "case_shiller (normal solver)"
    assert _cells(html, "regions") == "0 (the pooled index ALL alone)"
    assert _cells(html, "pairs, pooled index") == (
        f"{int(result.n_pairs[0]):,} in, {int(result.n_used[0]):,} used; "
        f"left out: {zero:,} weight 0 (Case-Shiller stage 2)"
    )
