"""The Huber robust index (estimation/methods/robust.py) against statsmodels' RLM on each group's
explicit dummy matrix (tests/methods_reference.py): outliers resisted, the iteration limit, standard
errors where a group has no usable pair or no residual degrees of freedom."""

from __future__ import annotations

import numpy as np
import pytest
from methods_reference import (
    BASE,
    CPU,
    ROBUST,
    MethodProblem,
    T,
    assert_generator_covers,
    assert_matches,
    estimate,
    method_problem,
    ref_robust,
    reference,
)

import gpu_hpi
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


@pytest.mark.parametrize(("base_period", "huber_c"), [(BASE, 1.345), (7, 1.345), (BASE, 2.0)])
def test_robust_matches_statsmodels_rlm(base_period: int, huber_c: float) -> None:
    p = method_problem(3, outliers=0.06)
    method = MethodOptions(name="robust", tol=1e-12, max_iter=200, huber_c=huber_c)
    result = estimate(p, method, base_period=base_period)
    ref = reference(p, ref_robust, base=base_period, c=huber_c)
    assert_generator_covers(p, ref)
    assert_matches(result, ref, atol=1e-6, se_rtol=1e-6)
    scales = [e["scale"] for e in ref.extra]
    for solve, want in (("groups", scales[:-1]), ("pooled", scales[-1:])):
        info = result.solver_info[solve]
        assert info["method"] == "robust" and info["converged"] is True and info["huber_c"] == huber_c
        np.testing.assert_allclose(info["scale"], want, rtol=1e-6)
    # statsmodels counts the OLS start as iteration 1; the groups iterate together until all converge
    sm_iterations = [e["iterations"] for e in ref.extra]
    assert abs(result.solver_info["groups"]["iterations"] - (max(sm_iterations[:-1]) - 1)) <= 1
    assert abs(result.solver_info["pooled"]["iterations"] - (sm_iterations[-1] - 1)) <= 1
    np.testing.assert_allclose(result.sigma2, np.square(scales), rtol=1e-6)


def test_robust_resists_outliers() -> None:
    """With gross outliers the Huber fit is far closer to the true index than OLS (which it differs from)."""
    p = method_problem(3, outliers=0.06)
    robust, ols = estimate(p, ROBUST), estimate(p, "bmn")
    ok = np.isfinite(ols.log_index)
    np.testing.assert_array_equal(np.isfinite(robust.log_index), ok)
    err_robust = np.abs(robust.log_index - p.beta)[ok].max()
    err_ols = np.abs(ols.log_index - p.beta)[ok].max()
    assert err_robust < 0.5 * err_ols
    ref = reference(p, ref_robust, base=BASE)  # its OLS start is the bmn fit
    np.testing.assert_allclose(ols.log_index, [e["ols"] for e in ref.extra], atol=1e-9, equal_nan=True)


def test_robust_on_clean_data_stays_near_ols() -> None:
    p = method_problem(4, noise=(1e-3, 0.0), invalid=False)
    robust, ols = estimate(p, ROBUST), estimate(p, "bmn")
    np.testing.assert_array_equal(np.isnan(robust.log_index), np.isnan(ols.log_index))
    assert np.nanmax(np.abs(robust.log_index - ols.log_index)) < 1e-3  # within the noise
    assert np.nanmax(np.abs(robust.log_index - p.beta)) < 5e-3
    assert all(1e-4 < s < 1e-2 for s in robust.solver_info["groups"]["scale"])  # about the noise sd 1e-3
    assert robust.solver_info["groups"]["converged"] is True


def test_robust_iteration_limit_warns() -> None:
    p = method_problem(3, outliers=0.06)
    with pytest.warns(gpu_hpi.ConvergenceWarning, match="did not converge in 1 iteration"):
        result = estimate(p, MethodOptions(name="robust", max_iter=1))
    info = result.solver_info["groups"]
    assert info["converged"] is False and info["iterations"] == 1
    assert np.isfinite(result.log_index[0]).all()


def test_robust_needs_pairs() -> None:
    p = method_problem(3)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, backend=CPU), CPU)
    with pytest.raises(gpu_hpi.ConfigError, match="robust"):
        gpu_hpi.fit_index(table, backend=CPU, method="robust")


def with_group(p: MethodProblem, prev: np.ndarray, recent: np.ndarray, y: np.ndarray, label: int) -> MethodProblem:
    """The problem with one more group of the given pairs (prices consistent with y)."""
    n = len(y)
    return MethodProblem(
        np.concatenate([p.prev, prev]),
        np.concatenate([p.recent, recent]),
        np.concatenate([p.y, y]),
        np.concatenate([p.group, np.full(n, label)]),
        np.concatenate([p.p0, np.full(n, 1e5)]),
        np.concatenate([p.p1, 1e5 * np.exp(y)]),
        p.beta,
    )


def test_robust_se_at_the_base_without_usable_pairs() -> None:
    """A group whose pairs all lie outside the base period's component: only the base is identified,
    with log index 0 and se 0 (as every other method gives)."""
    rng = np.random.default_rng(11)
    i = rng.integers(5, T - 1, 40)
    p = with_group(method_problem(3, outliers=0.05), i, i + 1, rng.normal(0, 0.1, 40), 50)
    for method in ("bmn", "case_shiller", "arithmetic"):
        other = estimate(p, method, prices=True)
        assert other.log_index[4, BASE] == 0 and other.se[4, BASE] == 0
    result = estimate(p, ROBUST, prices=True)
    assert list(result.groups)[4] == 50
    assert np.isnan(np.delete(result.log_index[4], BASE)).all() and result.log_index[4, BASE] == 0
    np.testing.assert_array_equal(result.se[:4, BASE], 0.0)
    assert result.se[4, BASE] == 0


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_robust_without_residual_degrees_of_freedom() -> None:
    """A group of exactly one pair per consecutive periods fits exactly: its se is undefined (NaN) but 0
    at the base, as for OLS."""
    i = np.arange(T - 1)
    p = with_group(method_problem(3, outliers=0.05), i, i + 1, np.random.default_rng(12).normal(0, 0.1, T - 1), 50)
    ols = estimate(p, "bmn", min_pairs=5)
    robust = estimate(p, ROBUST, min_pairs=5)
    assert list(robust.groups)[4] == 50 and np.isfinite(robust.log_index[4]).all()
    np.testing.assert_allclose(robust.log_index[4], ols.log_index[4], atol=1e-12)  # an exact fit either way
    assert np.isnan(ols.sigma2[4]) and ols.se[4, BASE] == 0 and np.isnan(np.delete(ols.se[4], BASE)).all()
    np.testing.assert_array_equal(robust.se[4], ols.se[4])
    assert np.isnan(robust.sigma2[4])


def test_regions_fitted_exactly_but_for_one_cell_give_the_least_squares_fit() -> None:
    """Two regions of seven pairs over 24 months, each fitted exactly but for one cell: their MAD
    scale is round-off (~1e-17), whose Huber weights made the weighted fit singular (a traceback).
    A MAD below round-off counts as a MAD of 0 (weights 1): each region's least-squares fit."""
    prev = np.array([0, 0, 7, 7, 15, 7, 21, 0, 13, 11, 19, 0, 9, 1])
    recent = np.array([16, 18, 20, 18, 21, 18, 23, 6, 22, 15, 20, 13, 20, 13])
    y = np.array([0.101695, 0.026597, 0.017241, 0.097423, 0.063923, 0.056332, 0.079295])
    y = np.concatenate([y, [0.025362, -0.022037, 0.048418, 0.081673, 0.120704, 0.078236, 0.127376]])
    group = np.repeat(["a", "b"], 7)
    options = {"n_periods": 24, "backend": "cpu", "min_pairs": 1, "pooled": False}
    fit = gpu_hpi.estimate_index(prev, recent, y, group, method="robust", **options)
    ols = gpu_hpi.estimate_index(prev, recent, y, group, method="bmn", **options)
    np.testing.assert_allclose(fit.log_index, ols.log_index, atol=1e-12)
    for g, name in enumerate(("a", "b")):  # OLS itself against lstsq on the periods it identifies
        rows = group == name
        known = np.flatnonzero(~np.isnan(ols.log_index[g]))[1:]
        dummies = (recent[rows, None] == known) * 1.0 - (prev[rows, None] == known) * 1.0
        inside = np.isin(prev[rows], [0, *known]) & np.isin(recent[rows], known)
        solved, *_ = np.linalg.lstsq(dummies[inside], y[rows][inside], rcond=None)
        np.testing.assert_allclose(ols.log_index[g, known], solved, atol=1e-12)
