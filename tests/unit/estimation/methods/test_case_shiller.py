"""Case & Shiller's interval-weighted index (estimation/methods/case_shiller.py) against the per-pair
reference of tests/methods_reference.py: stage 1 OLS, stage 2 on the squared or absolute residuals,
stage 3 WLS (statsmodels); pairs of weight 0 left out and counted."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import noisy_short_precise_long
from methods_reference import (
    BASE,
    CPU,
    assert_generator_covers,
    assert_matches,
    estimate,
    fit_with_pairs,
    method_problem,
    ref_case_shiller,
    reference,
)

import gpu_hpi
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


@pytest.mark.parametrize("base_period", [BASE, 7])
@pytest.mark.parametrize(
    ("stage2", "quadratic"), [("squared", False), ("squared", True), ("absolute", False), ("absolute", True)]
)
def test_case_shiller_matches_reference(stage2: str, quadratic: bool, base_period: int) -> None:
    p = method_problem(1)
    method = MethodOptions(name="case_shiller", stage2=stage2, quadratic=quadratic)
    result = estimate(p, method, base_period=base_period)
    ref = reference(p, ref_case_shiller, base=base_period, stage2=stage2, quadratic=quadratic)
    assert_generator_covers(p, ref)
    assert_matches(result, ref, atol=1e-9, se_rtol=1e-9)
    np.testing.assert_allclose(result.sigma2, [e["sigma2"] for e in ref.extra], rtol=1e-9)
    np.testing.assert_array_equal(result.n_used, [e["n_used"] for e in ref.extra])
    coef = [e["coef"] for e in ref.extra]
    for solve, want in (("groups", coef[:-1]), ("pooled", coef[-1:])):
        info = result.solver_info[solve]
        assert info["method"] == "case_shiller" and info["stage2"] == stage2 and info["quadratic"] is quadratic
        got = np.asarray(info["stage2_coef"])
        assert got.shape == (len(want), 3)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
        assert quadratic or not got[:, 2].any()
    assert quadratic or (np.asarray(coef)[:, 1] > 0).all()  # the noise grows with the interval, as generated


def test_case_shiller_differs_from_ols() -> None:
    """Interval weights change the index (so the comparisons above do not pass by OLS alone)."""
    p = method_problem(1)
    cs, ols = estimate(p, "case_shiller"), estimate(p, "bmn")
    np.testing.assert_array_equal(np.isnan(cs.log_index), np.isnan(ols.log_index))
    assert np.nanmax(np.abs(cs.log_index - ols.log_index)) > 1e-4
    assert np.nanmax(np.abs(cs.se - ols.se)) > 1e-5


def test_case_shiller_zero_weights_leave_out_pairs_and_periods() -> None:
    """Where the fitted stage-2 variance is <= 0 the pairs weigh 0; a period reached only through them
    is then unidentified (NaN) in the weighted fit, though OLS identifies it."""
    p = method_problem(2, decreasing=True)
    ref = reference(p, ref_case_shiller, base=BASE, stage2="squared", quadratic=False)
    assert ref.extra[1]["zero_weight"] > 0 and ref.extra[1]["lost"] == 1  # group 20
    result = estimate(p, "case_shiller")
    assert_matches(result, ref, atol=1e-9, se_rtol=1e-9)
    np.testing.assert_array_equal(result.n_used, [e["n_used"] for e in ref.extra])
    ols = estimate(p, "bmn")
    assert np.isnan(result.log_index[1, 9]) and np.isfinite(ols.log_index[1, 9])
    assert result.solver_info["groups"]["stage2_coef"][1][1] < 0


def test_case_shiller_absolute_through_estimate_index() -> None:
    """estimate_index hands the pairs to the |e| stage 2 (a cell table alone cannot give it)."""
    p = method_problem(1)
    method = MethodOptions(name="case_shiller", stage2="absolute")
    result = estimate(p, method)
    np.testing.assert_allclose(result.log_index, fit_with_pairs(p, method).log_index, atol=1e-12, equal_nan=True)


def test_case_shiller_absolute_needs_pairs() -> None:
    p = method_problem(1)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, backend=CPU), CPU)
    with pytest.raises(gpu_hpi.ConfigError, match="absolute"):
        gpu_hpi.fit_index(table, backend=CPU, method=MethodOptions(name="case_shiller", stage2="absolute"))


def test_case_shiller_zero_weight_pairs_are_counted_and_warned() -> None:
    """Noisy short holdings, precise long ones: the linear stage-2 variance turns negative past some
    holding length, and the pairs there get weight 0. Counted against a plain numpy reference
    (dummy-matrix OLS, then the residuals squared regressed on [1, h])."""
    t = 40
    prev, recent, y = noisy_short_precise_long(t=t)
    h = recent - prev
    z = np.zeros((len(y), t))
    z[np.arange(len(y)), recent] += 1
    z[np.arange(len(y)), prev] -= 1
    beta = np.linalg.lstsq(z[:, 1:], y, rcond=None)[0]
    e2 = (y - z[:, 1:] @ beta) ** 2
    coef = np.linalg.lstsq(np.column_stack([np.ones_like(h), h]).astype(float), e2, rcond=None)[0]
    want = int((coef[0] + coef[1] * h <= 0).sum())
    assert want > 0
    with pytest.warns(gpu_hpi.IdentificationWarning, match=r"weight 0 .*zero_weight"):
        result = gpu_hpi.estimate_index(prev, recent, y, n_periods=t, method="case_shiller", backend="cpu", min_pairs=1)
    info = result.solver_info["groups"]
    assert info["zero_weight_pairs"] == want
    assert info["zero_weight_from_holding"] == int(h[coef[0] + coef[1] * h <= 0].min())
    assert int(result.n_used.sum()) == len(y) - want


@pytest.mark.parametrize(
    "method",
    [
        MethodOptions(name="case_shiller"),
        MethodOptions(name="case_shiller", quadratic=True),
        MethodOptions(name="case_shiller", stage2="absolute"),
        MethodOptions(name="robust"),
    ],
    ids=["squared", "quadratic", "absolute", "robust"],
)
def test_a_region_its_index_fits_exactly(method: MethodOptions) -> None:
    """A region with no more pairs than periods: its residuals are round-off, whose stage-2 (or
    MAD) weights differ by ~1e17. Case-Shiller gave a wrong index (4% off) or a singular matrix,
    robust a singular matrix. Now its exact fit (lstsq's), and the other region as on its own."""
    rng = np.random.default_rng(11)
    beta = np.concatenate([[0.0], np.cumsum(rng.normal(0.01, 0.05, 11))])
    exact_prev, exact_recent = np.array([0, 1, 2, 3, 4, 5, 6]), np.array([1, 2, 3, 4, 5, 6, 11])
    n = 600
    prev = rng.integers(0, 11, n)
    recent = np.minimum(prev + rng.integers(1, 6, n), 11)
    noisy_y = beta[recent] - beta[prev] + rng.normal(0, 0.02 * (recent - prev), n)
    prevs, recents = np.concatenate([exact_prev, prev]), np.concatenate([exact_recent, recent])
    y = np.concatenate([beta[exact_recent] - beta[exact_prev], noisy_y])
    group = np.array(["exact"] * 7 + ["noisy"] * n, dtype=object)
    fit = gpu_hpi.estimate_index(
        prevs, recents, y, group, n_periods=12, backend="cpu", method=method, min_pairs=1, pooled=False
    )
    alone = gpu_hpi.estimate_index(prev, recent, noisy_y, n_periods=12, backend="cpu", method=method, min_pairs=1)
    dummies = np.zeros((7, 11))
    for row, (i, j) in enumerate(zip(exact_prev, exact_recent, strict=True)):
        dummies[row, j - 1] += 1.0
        dummies[row, i - 1] -= 1.0 if i else 0.0
    solved, *_ = np.linalg.lstsq(dummies[:, [0, 1, 2, 3, 4, 5, 10]], y[:7], rcond=None)
    exact_row = fit.log_index[list(fit.groups).index("exact")]
    np.testing.assert_allclose(exact_row[[1, 2, 3, 4, 5, 6, 11]], solved, atol=1e-12)
    np.testing.assert_allclose(fit.log_index[list(fit.groups).index("noisy")], alone.log_index[0], atol=1e-10)


@pytest.mark.parametrize("name", ["case_shiller", "arithmetic"])
def test_two_holding_lengths_fit_the_quadratic_stage_2_as_the_linear_one(name: str) -> None:
    """With holdings of 1 and 2 periods only (yearly periods over three years, a revision study's
    early vintages), the quadratic stage 2 has one fit through the two mean residuals, the linear
    one's: it fell back to equal weights (OLS), up to 2% off in the index and 36% in its se."""
    rng = np.random.default_rng(12)
    n = 400
    beta = np.concatenate([[0.0], np.cumsum(rng.normal(0.02, 0.05, 5))])
    prev = rng.integers(0, 4, n)
    recent = prev + rng.integers(1, 3, n)
    y = beta[recent] - beta[prev] + rng.normal(0, 0.02, n) * (recent - prev) ** 2
    prices = np.exp(rng.normal(12, 0.3, n))
    options = {
        "n_periods": 6,
        "backend": "cpu",
        "min_pairs": 1,
        "price_prev": prices,
        "price_recent": prices * np.exp(y),
    }
    weighted = {"interval_weights": True} if name == "arithmetic" else {}
    fits = [
        gpu_hpi.estimate_index(prev, recent, y, method=MethodOptions(name=name, quadratic=q, **weighted), **options)
        for q in (False, True)
    ]
    ols = gpu_hpi.estimate_index(prev, recent, y, method="bmn" if name == "case_shiller" else "arithmetic", **options)
    np.testing.assert_allclose(fits[1].log_index, fits[0].log_index, atol=1e-12)
    np.testing.assert_allclose(fits[1].se, fits[0].se, rtol=1e-9)
    assert np.abs(fits[0].log_index - ols.log_index).max() > 1e-4  # the weights matter here
