"""Shiller's value-weighted arithmetic index (estimation/methods/arithmetic.py) against the per-pair
reference of tests/methods_reference.py (instrumental variables, the sandwich standard errors,
interval weights); invalid prices dropped, exact prices recovered."""

from __future__ import annotations

import numpy as np
import pytest
from methods_reference import (
    BASE,
    CPU,
    T,
    assert_generator_covers,
    estimate,
    method_problem,
    ref_arithmetic,
    reference,
)
from reference import drop_counts

import gpu_hpi
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


@pytest.mark.parametrize("base_period", [BASE, 7])
@pytest.mark.parametrize(("interval_weights", "quadratic"), [(False, False), (True, False), (True, True)])
def test_arithmetic_matches_reference(interval_weights: bool, quadratic: bool, base_period: int) -> None:
    p = method_problem(5, bad_prices=True)
    method = MethodOptions(name="arithmetic", interval_weights=interval_weights, quadratic=quadratic)
    result = estimate(p, method, prices=True, base_period=base_period)
    ref = reference(
        p, ref_arithmetic, prices=True, base=base_period, interval_weights=interval_weights, quadratic=quadratic
    )
    assert_generator_covers(p, ref)
    assert list(result.groups) == ref.groups
    np.testing.assert_array_equal(np.isnan(result.log_index), np.isnan(ref.log_index), err_msg="NaN pattern")
    np.testing.assert_allclose(result.index, 100.0 * np.exp(ref.log_index), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(result.se, ref.se, rtol=1e-9, atol=0, equal_nan=True)
    assert (result.se[:, base_period] == 0).all() and (result.index[:, base_period] == 100).all()
    for solve in ("groups", "pooled"):
        info = result.solver_info[solve]
        assert info["method"] == "arithmetic" and info["interval_weights"] is interval_weights
    if interval_weights:
        coef = [e["coef"] for e in ref.extra]
        for solve, want in (("groups", coef[:-1]), ("pooled", coef[-1:])):
            got = np.asarray(result.solver_info[solve]["stage2_coef"])
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9 * np.abs(want).max())
            assert quadratic or not got[:, 2].any()
    else:
        assert "stage2_coef" not in result.solver_info["groups"]


def test_arithmetic_interval_weights_change_the_index() -> None:
    p = method_problem(5)
    plain = estimate(p, "arithmetic", prices=True)
    weighted = estimate(p, MethodOptions(name="arithmetic", interval_weights=True), prices=True)
    assert np.nanmax(np.abs(plain.log_index - weighted.log_index)) > 1e-4


def test_arithmetic_drops_invalid_prices() -> None:
    p = method_problem(5, bad_prices=True)
    bad = p.valid() & ~p.valid(prices=True)
    assert bad.sum() >= 10
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, n_periods=T, backend=CPU, **p.price_kwargs())
    table = gpu_hpi.build_cell_table(pairs, CPU)
    assert table.has_prices
    assert table.dropped == {**drop_counts(p.prev, p.recent, p.y, p.group, T), "invalid_price": int(bad.sum())}
    assert table.n_pairs == int(p.valid(prices=True).sum())
    # the same index as from the pairs without them
    keep = ~bad
    got = estimate(p, "arithmetic", prices=True)
    want = gpu_hpi.estimate_index(
        p.prev[keep],
        p.recent[keep],
        p.y[keep],
        p.group[keep],
        n_periods=T,
        backend=CPU,
        method="arithmetic",
        base_period=BASE,
        price_prev=p.p0[keep],
        price_recent=p.p1[keep],
    )
    np.testing.assert_allclose(got.log_index, want.log_index, rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got.se, want.se, rtol=1e-10, equal_nan=True)


def test_arithmetic_table_in_chunks() -> None:
    p = method_problem(5, bad_prices=True)
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, n_periods=T, backend=CPU, **p.price_kwargs())
    whole = gpu_hpi.build_cell_table(pairs, CPU)
    chunked = gpu_hpi.build_cell_table(pairs, CPU, chunk_size=64)
    assert chunked.dropped == whole.dropped
    for name in ("p_prev", "p_recent", "p_cross", "y"):
        np.testing.assert_allclose(chunked.sums[name], whole.sums[name], rtol=1e-12)


def test_arithmetic_recovers_exact_prices() -> None:
    """Noise-free prices P1 = P0 I_j / I_i give back the index I exactly, with se 0."""
    p = method_problem(6, invalid=False)
    index = np.exp(p.beta)
    p.p1 = p.p0 * index[p.recent] / index[p.prev]
    result = estimate(p, "arithmetic", prices=True)
    ok = np.isfinite(result.log_index)
    assert ok.sum() > 30
    np.testing.assert_allclose(result.index[ok], 100.0 * np.broadcast_to(index, ok.shape)[ok], rtol=1e-10)
    assert np.nanmax(result.se) < 1e-7  # rounding of the price moments only (noisy data: about 1e-2)


def test_arithmetic_needs_prices() -> None:
    p = method_problem(5)
    with pytest.raises(gpu_hpi.DataError, match="prices"):
        estimate(p, "arithmetic")


def test_a_fit_without_residual_degrees_of_freedom_has_no_standard_error() -> None:
    """Two pairs, two periods to estimate: the sandwich of zero residuals gave se 0 and a
    confidence interval of no width, where the OLS fit gives NaN; the base period read -0."""
    prev, recent, y = np.array([0, 1]), np.array([1, 2]), np.array([0.1, 0.2])
    prices = np.array([100.0, 110.0])
    options = {"n_periods": 3, "backend": "cpu", "min_pairs": 1, "price_prev": prices}
    fits = [
        gpu_hpi.estimate_index(prev, recent, y, method=name, price_recent=prices * np.exp(y), **options)
        for name in ("bmn", "arithmetic")
    ]
    np.testing.assert_array_equal(fits[1].se, fits[0].se)  # [0, nan, nan]
    np.testing.assert_allclose(fits[1].log_index, [[0.0, 0.1, 0.3]], atol=1e-12)
    assert not np.signbit(fits[1].log_index[0, 0]) and np.isnan(fits[1].se[0, 1:]).all()
