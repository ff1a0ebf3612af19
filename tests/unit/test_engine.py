"""The estimation engine against the independent dense reference, and its options, results and errors."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import scipy.sparse.linalg
from reference import (
    REASONS,
    Problem,
    assert_matches_reference,
    connected_problem,
    drop_counts,
    random_problem,
    reference_index,
)
from scipy.stats import norm

import gpu_hpi
from gpu_hpi.estimation import iterative, normal
from gpu_hpi.estimation.result import INDEX_COLUMNS

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = "cpu"


def estimate(p: Problem, group: Any = "float", **options: Any) -> gpu_hpi.IndexResult:
    """estimate_index on a problem; group "float" (NaN = missing), "str", "int", None or an array."""
    if isinstance(group, str):
        group = {"float": p.group_float, "str": p.group_str, "int": p.group_int}[group]()
    return gpu_hpi.estimate_index(p.prev, p.recent, p.y, group, n_periods=p.n_periods, backend=CPU, **options)


def reference(p: Problem, group: Any = "float", **options: Any) -> Any:
    if isinstance(group, str):
        group = {"float": p.group_float, "str": p.group_str, "int": p.group_int}[group]()
    return reference_index(p.prev, p.recent, p.y, group, n_periods=p.n_periods, **options)


# --------------------------------------------------------------------------------------------------
# agreement with the reference


@pytest.mark.parametrize("base_period", [0, 5, 11])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_matches_reference(seed: int, base_period: int) -> None:
    p = random_problem(np.random.default_rng(seed))
    result = estimate(p, base_period=base_period)
    ref = reference(p, base_period=base_period)
    # the generator must produce every interesting case, or the comparison proves little
    assert ref.skipped.any() and (~ref.skipped).any()
    assert np.isnan(ref.log_index[~ref.skipped]).any()
    assert_matches_reference(result, ref, atol=1e-9, se_rtol=1e-7, stat_rtol=1e-7)
    assert result.base_period == base_period
    identified = ~ref.skipped
    np.testing.assert_array_equal(result.log_index[identified, base_period], 0.0)
    np.testing.assert_array_equal(result.se[identified, base_period], 0.0)


@pytest.mark.parametrize("base_period", [0, 7])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("solver", ["lsqr", "lsmr"])
def test_iterative_matches_reference(solver: str, seed: int, base_period: int) -> None:
    p = random_problem(np.random.default_rng(seed))
    result = estimate(p, solver=solver, base_period=base_period)
    ref = reference(p, base_period=base_period)
    assert_matches_reference(result, ref, atol=1e-8, se_rtol=1e-6, stat_rtol=1e-6)


@pytest.mark.parametrize("solver", ["normal", "lsqr", "lsmr"])
def test_string_labels_match_reference(problem: Problem, solver: str) -> None:
    result = estimate(problem, "str", solver=solver)
    ref = reference(problem, "str")
    assert ref.groups == ["g11110", "g11140", "g41190", "g99999", "ALL"]
    assert_matches_reference(result, ref, atol=1e-8, se_rtol=1e-6, stat_rtol=1e-6)


@pytest.mark.parametrize("solver", ["normal", "lsqr"])
def test_groups_only_and_pooled_only(problem: Problem, solver: str) -> None:
    ref = reference(problem)
    only_pooled = estimate(problem, solver=solver, groups=False)
    assert list(only_pooled.groups) == ["ALL"]
    np.testing.assert_allclose(only_pooled.log_index, ref.log_index[-1:], atol=1e-8, rtol=0)
    only_groups = estimate(problem, solver=solver, pooled=False)
    assert list(only_groups.groups) == ref.groups[:-1]
    np.testing.assert_allclose(only_groups.log_index, ref.log_index[:-1], atol=1e-8, rtol=0)
    assert set(only_groups.solver_info) == {"groups"}
    assert set(only_pooled.solver_info) == {"pooled"}


@pytest.mark.parametrize("solver", ["normal", "lsqr", "lsmr"])
def test_pooled_leaves_out_missing_group_pairs(solver: str) -> None:
    p = random_problem(np.random.default_rng(3))
    # pairs whose only fault is a missing group: make them far off, so including them would show
    only_missing = p.missing & (p.prev >= 0) & (p.recent < p.n_periods) & (p.prev < p.recent) & np.isfinite(p.y)
    assert only_missing.sum() >= 3
    p.y[only_missing] += 2.0
    result = estimate(p, solver=solver)
    ref = reference(p)
    np.testing.assert_allclose(result.log_index[-1], ref.log_index[-1], atol=1e-8, rtol=0)
    assert result.n_pairs[-1] == ref.n_pairs[-1] == ref.n_pairs[:-1].sum()
    # the same pooled fit with the missing-group pairs given a group differs clearly
    with_them = reference_index(
        p.prev, p.recent, p.y, np.where(p.missing, 11110.0, p.group_float()), n_periods=p.n_periods
    )
    assert np.nanmax(np.abs(with_them.log_index[-1] - result.log_index[-1])) > 1e-3


def test_group_batches_give_the_same_fit(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = estimate(problem)
    for name in ("GROUP_CELLS", "HOST_GROUP_CELLS"):  # two groups a batch, on the device and the host
        monkeypatch.setattr(normal, name, 2 * problem.n_periods**2)
    batched = estimate(problem)
    np.testing.assert_allclose(batched.log_index, whole.log_index, atol=1e-12, rtol=0)
    np.testing.assert_allclose(batched.se, whole.se, rtol=1e-10, atol=0)
    assert_matches_reference(batched, reference(problem))


@pytest.mark.parametrize("solver", ["normal", "lsqr", "lsmr"])
def test_noise_free_pairs_recover_the_index_exactly(solver: str) -> None:
    rng = np.random.default_rng(11)
    t = 9
    beta = np.concatenate([[0.0], np.cumsum(rng.normal(0.02, 0.05, size=t - 1))])
    p = connected_problem(rng, n_periods=t, n_pairs=60)
    p.y = beta[p.recent] - beta[p.prev]
    result = estimate(p, group=None, solver=solver)
    np.testing.assert_allclose(result.log_index[0], beta, atol=1e-9, rtol=0)
    np.testing.assert_allclose(result.index[0], 100 * np.exp(beta), rtol=1e-9)
    assert result.r2[0] == pytest.approx(1.0, abs=1e-12)
    assert result.sigma2[0] < 1e-18
    # rebased: the index at another base is the same curve divided by its value there
    rebased = estimate(p, group=None, solver=solver, base_period=4)
    np.testing.assert_allclose(rebased.log_index[0], beta - beta[4], atol=1e-9, rtol=0)


def test_float32_y_matches_reference_of_its_values(problem: Problem) -> None:
    y32 = problem.y.astype(np.float32)
    result = gpu_hpi.estimate_index(
        problem.prev, problem.recent, y32, problem.group_float(), n_periods=problem.n_periods, backend=CPU
    )
    ref = reference_index(
        problem.prev, problem.recent, y32.astype(np.float64), problem.group_float(), n_periods=problem.n_periods
    )
    assert_matches_reference(result, ref)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32])
@pytest.mark.parametrize("solver", ["normal", "lsqr"])
def test_period_dtypes(clean_problem: Problem, dtype: Any, solver: str) -> None:
    p = clean_problem
    want = estimate(p, solver=solver)
    got = gpu_hpi.estimate_index(
        p.prev.astype(dtype),
        p.recent.astype(dtype),
        p.y,
        p.group_float(),
        n_periods=p.n_periods,
        backend=CPU,
        solver=solver,
    )
    np.testing.assert_array_equal(got.log_index, want.log_index)
    np.testing.assert_array_equal(got.period_pairs, want.period_pairs)


def test_uint64_periods(clean_problem: Problem) -> None:
    p = clean_problem
    want = estimate(p)
    got = gpu_hpi.estimate_index(
        p.prev.astype(np.uint64), p.recent.astype(np.uint64), p.y, p.group_float(), n_periods=p.n_periods, backend=CPU
    )
    np.testing.assert_array_equal(got.log_index, want.log_index)


@pytest.mark.parametrize("solver", ["normal", "lsqr", "lsmr"])
def test_all_group_ids_missing(solver: str) -> None:
    group = np.array([np.nan, np.nan, np.nan])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = gpu_hpi.estimate_index(
            np.array([0, 1, 0]),
            np.array([1, 2, 2]),
            np.array([0.1, 0.2, 0.3]),
            group,
            n_periods=3,
            backend=CPU,
            solver=solver,
            min_pairs=1,
        )
    assert any(issubclass(w.category, gpu_hpi.IdentificationWarning) for w in caught)
    assert list(result.groups) == ["ALL"]
    assert result.n_pairs.tolist() == [0] and result.skipped.tolist() == [True]
    assert np.isnan(result.log_index).all()


def test_pandas_series_inputs(problem: Problem) -> None:
    frame = pd.DataFrame(
        {"prev": problem.prev, "recent": problem.recent, "y": problem.y, "region": problem.group_float()}
    )
    result = gpu_hpi.estimate_index(
        frame["prev"], frame["recent"], frame["y"], frame["region"], n_periods=problem.n_periods, backend=CPU
    )
    assert_matches_reference(result, reference(problem))


def test_default_n_periods_is_max_recent_plus_one(connected: Problem) -> None:
    p = connected
    result = gpu_hpi.estimate_index(p.prev, p.recent, p.y, backend=CPU)
    assert result.log_index.shape == (1, int(p.recent.max()) + 1)
    np.testing.assert_allclose(result.log_index, estimate(p, group=None).log_index, atol=0, rtol=0)


# --------------------------------------------------------------------------------------------------
# invalid pairs


def _handmade() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Pairs failing each reason, several failing more than one (counted under the first)."""
    nan, inf = np.nan, np.inf
    rows = [
        # prev, recent, y, group
        (0, 1, 0.10, 1.0),  # valid
        (1, 2, 0.20, 1.0),  # valid
        (0, 4, 0.30, 2.0),  # valid
        (0, 2, 0.20, nan),  # missing_group
        (-1, 2, nan, nan),  # missing_group (also out of range, non-finite)
        (3, 3, 0.00, nan),  # missing_group (also prev == recent)
        (-1, 2, 0.10, 1.0),  # period_out_of_range
        (0, 5, 0.10, 1.0),  # period_out_of_range (recent == T)
        (6, 2, nan, 2.0),  # period_out_of_range (also prev > recent, non-finite)
        (3, 3, nan, 1.0),  # same_period (also non-finite)
        (4, 2, 0.10, 2.0),  # prev_not_before_recent
        (1, 3, inf, 1.0),  # nonfinite_y
        (1, 3, -inf, 2.0),  # nonfinite_y
        (2, 3, nan, 2.0),  # nonfinite_y
    ]
    prev, recent, y, group = (np.array(c) for c in zip(*rows, strict=True))
    expected = {
        "missing_group": 3,
        "period_out_of_range": 3,
        "same_period": 1,
        "prev_not_before_recent": 1,
        "nonfinite_y": 3,
    }
    return prev.astype(np.int64), recent.astype(np.int64), y.astype(np.float64), group, expected


def test_drop_counts_per_reason_exact() -> None:
    prev, recent, y, group, expected = _handmade()
    pairs = gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=5, backend=CPU)
    table = gpu_hpi.build_cell_table(pairs, gpu_hpi.resolve_backend(CPU))
    assert table.dropped == expected
    assert list(table.dropped) == list(REASONS)  # reported in the documented order
    assert table.n_pairs == 3
    # the reference counts the same way (so the random-problem comparisons below mean something)
    assert drop_counts(prev, recent, y, group, 5) == expected


def test_drop_counts_without_group_column() -> None:
    prev, recent, y, _, _ = _handmade()
    table = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(prev, recent, y, n_periods=5, backend=CPU), gpu_hpi.resolve_backend(CPU)
    )
    # no group column: nothing is missing, the former missing-group pairs fall to later reasons
    assert table.dropped == {"period_out_of_range": 4, "same_period": 2, "prev_not_before_recent": 1, "nonfinite_y": 3}
    assert table.n_pairs == 4


@pytest.mark.parametrize("seed", [0, 5])
def test_drop_counts_match_reference(seed: int) -> None:
    p = random_problem(np.random.default_rng(seed))
    ref = reference(p)
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, backend=CPU)
    table = gpu_hpi.build_cell_table(pairs, gpu_hpi.resolve_backend(CPU))
    assert table.dropped == ref.dropped
    assert set(table.dropped) == set(REASONS)
    assert table.n_pairs + sum(table.dropped.values()) == p.n_pairs


def test_strict_raises_data_error(problem: Problem) -> None:
    with pytest.raises(gpu_hpi.DataError) as info:
        estimate(problem, strict=True)
    for reason in REASONS:
        assert reason in str(info.value)


def test_strict_passes_clean_data(clean_problem: Problem) -> None:
    strict = estimate(clean_problem, "int", strict=True)
    loose = estimate(clean_problem, "int")
    np.testing.assert_array_equal(strict.log_index, loose.log_index)


# --------------------------------------------------------------------------------------------------
# identification, skipping, warnings


def test_min_pairs_skips_small_groups(problem: Problem) -> None:
    with pytest.warns(gpu_hpi.IdentificationWarning, match="fewer than 12 pairs skipped"):
        result = estimate(problem)
    small = list(result.groups).index(99999.0)
    assert result.skipped.tolist() == [False, False, False, True, False]
    assert np.isnan(result.log_index[small]).all() and np.isnan(result.se[small]).all()
    assert np.isnan(result.index[small]).all()
    assert result.n_used[small] == 0 and result.n_params[small] == 0
    assert np.isnan(result.sigma2[small]) and np.isnan(result.r2[small])
    assert 0 < result.n_pairs[small] < problem.n_periods
    # skipped groups are not listed as unidentified periods
    assert 99999.0 not in set(result.unidentified["group"])

    kept = estimate(problem, min_pairs=1)
    assert not kept.skipped.any()
    assert np.isfinite(kept.log_index[small]).sum() >= 2
    assert_matches_reference(kept, reference(problem, min_pairs=1))

    everything_skipped = estimate(problem, min_pairs=10_000)
    assert everything_skipped.skipped.all() and np.isnan(everything_skipped.log_index).all()


def test_unidentified_periods_warn_and_are_listed(problem: Problem) -> None:
    with pytest.warns(gpu_hpi.IdentificationWarning, match="not identified"):
        result = estimate(problem)
    ref = reference(problem)
    missing = np.isnan(ref.log_index) & ~ref.skipped[:, None]
    frame = result.unidentified
    assert list(frame.columns) == ["group", "period", "reason"]
    assert len(frame) == int(missing.sum())
    g, t = np.nonzero(missing)
    want_reason = np.where(ref.period_pairs[g, t] == 0, "no pairs", "not connected to the base period")
    got = sorted(zip(frame["group"], frame["period"], frame["reason"], strict=True))
    want = sorted(zip([ref.groups[k] for k in g], t.tolist(), want_reason.tolist(), strict=True))
    assert got == want
    assert {"no pairs", "not connected to the base period"} <= set(frame["reason"])


def test_all_identified_does_not_warn(connected: Problem) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = estimate(connected, group=None)
    assert np.isfinite(result.log_index).all() and len(result.unidentified) == 0


def test_pairs_outside_the_base_component_do_not_enter_the_fit() -> None:
    p = random_problem(np.random.default_rng(4))
    ref = reference(p)
    result = estimate(p)
    split = list(result.groups).index(41190.0)  # the group with two components
    assert 0 < result.n_used[split] < result.n_pairs[split]
    assert result.n_params[split] == np.isfinite(result.log_index[split]).sum() - 1
    # move the y of the pairs in the other component: nothing of the group's fit changes
    other = ~np.isnan(p.group_float()) & (p.gid == 41190) & (p.prev >= 0) & (p.recent < p.n_periods)
    other &= np.isnan(ref.log_index[split][np.clip(p.prev, 0, p.n_periods - 1)])
    assert other.any()
    p.y[other] += 5.0
    moved = estimate(p)
    np.testing.assert_array_equal(moved.log_index[split], result.log_index[split])
    np.testing.assert_array_equal(moved.se[split], result.se[split])
    assert moved.sigma2[split] == result.sigma2[split] and moved.r2[split] == result.r2[split]


# --------------------------------------------------------------------------------------------------
# the result object


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


# --------------------------------------------------------------------------------------------------
# iterative solvers


def _explicit_design(p: Problem) -> scipy.sparse.csr_matrix:
    """The dense -1/+1 matrix of a connected single-group problem without the base column 0, as CSR."""
    n, t = p.n_pairs, p.n_periods
    z = np.zeros((n, t))
    z[np.arange(n), p.prev] = -1.0
    z[np.arange(n), p.recent] = 1.0
    return scipy.sparse.csr_matrix(z[:, 1:])


def test_lsqr_matches_scipy_lsqr(connected: Problem) -> None:
    p = connected
    x, istop, itn, *_ = scipy.sparse.linalg.lsqr(_explicit_design(p), p.y, atol=1e-10, btol=1e-10)
    result = estimate(p, group=None, solver="lsqr", tol=1e-10)
    np.testing.assert_allclose(result.log_index[0, 1:], x, atol=1e-8, rtol=0)
    info = result.solver_info["groups"]
    assert info["solver"] == "lsqr"
    assert abs(info["iterations"] - itn) <= 1
    assert istop in (1, 2, 4, 5)  # converged, in scipy's eyes too
    assert info["stop_reason"] in {iterative.LSQR_STOP_REASONS[k] for k in (1, 2, 4, 5)}


def test_lsqr_stop_reason_matches_scipy(connected: Problem) -> None:
    p = connected
    _, istop, itn, *_ = scipy.sparse.linalg.lsqr(_explicit_design(p), p.y, atol=1e-10, btol=1e-10)
    sol = iterative.lsqr(np, _explicit_design(p), p.y, atol=1e-10, btol=1e-10)
    assert sol.iterations == itn
    assert sol.istop == istop
    info = estimate(p, group=None, solver="lsqr", tol=1e-10).solver_info["groups"]
    assert info["stop_reason"] == iterative.LSQR_STOP_REASONS[istop]


@pytest.mark.parametrize("iter_lim", [None, 1, 4])
def test_lsqr_function_follows_scipy(iter_lim: int | None) -> None:
    """The namespace-generic LSQR takes the same steps and stops as scipy's on the same matrix."""
    p = connected_problem(np.random.default_rng(12), n_periods=15, n_pairs=300)
    a = _explicit_design(p)
    x, istop, itn, r1norm, *_ = scipy.sparse.linalg.lsqr(a, p.y, atol=1e-10, btol=1e-10, iter_lim=iter_lim)
    sol = iterative.lsqr(np, a, p.y, atol=1e-10, btol=1e-10, iter_lim=iter_lim)
    assert sol.iterations == itn and sol.istop == istop
    np.testing.assert_allclose(sol.x, x, atol=1e-12, rtol=0)
    assert sol.residual_norm == pytest.approx(r1norm, rel=1e-10)


def test_lsqr_zero_rhs_returns_zero() -> None:
    a = _explicit_design(connected_problem(np.random.default_rng(13), n_periods=5, n_pairs=20))
    sol = iterative.lsqr(np, a, np.zeros(a.shape[0]))
    assert sol.iterations == 0 and sol.istop == 0 and not sol.x.any()


@pytest.mark.parametrize("solver", ["lsqr", "lsmr"])
def test_solver_info_of_iterative_solvers(problem: Problem, solver: str) -> None:
    result = estimate(problem, solver=solver)
    assert set(result.solver_info) == {"groups", "pooled"}
    for info in result.solver_info.values():
        assert info["solver"] == solver
        assert isinstance(info["iterations"], int) and 0 < info["iterations"] < 1000
        assert info["stop_reason"] in iterative.LSQR_STOP_REASONS.values()
        assert info["stop_reason"] != iterative.LSQR_STOP_REASONS[7]


def test_solver_info_of_normal(problem: Problem) -> None:
    expected = {"method": "bmn", "solver": "normal"}
    assert estimate(problem).solver_info == {"groups": expected, "pooled": expected}


@pytest.mark.parametrize("solver", ["lsqr", "lsmr"])
def test_iteration_limit_warns(problem: Problem, solver: str) -> None:
    with pytest.warns(gpu_hpi.ConvergenceWarning, match="iteration limit"):
        result = estimate(problem, solver=solver, iter_lim=2)
    info = result.solver_info["groups"]
    assert info["iterations"] == 2 and info["stop_reason"] == "iteration limit reached"
    assert np.nanmax(np.abs(result.log_index - estimate(problem).log_index)) > 1e-6


def _chain_with_extra_pairs(t: int = 40, extra: int = 20) -> Problem:
    """One pair per consecutive periods plus a few short-span pairs: many columns, slow Krylov convergence."""
    rng = np.random.default_rng(t + extra)
    i = rng.integers(0, t - 1, extra)
    j = np.minimum(i + rng.integers(1, 4, extra), t - 1)
    prev = np.concatenate([np.arange(t - 1), i])
    recent = np.concatenate([np.arange(1, t), j])
    n = len(prev)
    return Problem(prev, recent, rng.normal(0, 0.05, n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), t, [0])


@pytest.mark.parametrize("solver", ["lsqr", "lsmr"])
def test_default_iteration_limit_suffices(solver: str) -> None:
    p = _chain_with_extra_pairs()
    with warnings.catch_warnings():
        warnings.simplefilter("error", gpu_hpi.ConvergenceWarning)
        result = estimate(p, group=None, solver=solver, min_pairs=1)
    ref = reference(p, group=None, min_pairs=1)
    assert_matches_reference(result, ref, atol=1e-8, se_rtol=1e-6, stat_rtol=1e-6)


def test_looser_tolerance_takes_fewer_iterations(problem: Problem) -> None:
    tight = estimate(problem, solver="lsqr", tol=1e-12).solver_info["groups"]["iterations"]
    loose = estimate(problem, solver="lsqr", tol=1e-3).solver_info["groups"]["iterations"]
    assert loose < tight


# --------------------------------------------------------------------------------------------------
# group labels


def _by_label(result: gpu_hpi.IndexResult, relabel: dict[Any, int]) -> dict[int, np.ndarray]:
    """Rows of a result keyed by the original group id (pooled row under -1)."""
    return {relabel.get(label, -1): result.log_index[k] for k, label in enumerate(result.groups)}


@pytest.mark.parametrize(
    "encoding",
    ["int64", "int32", "uint32", "codes", "float", "str", "categorical", "negative", "large_range", "pandas"],
)
@pytest.mark.parametrize("solver", ["normal", "lsqr"])
def test_group_encodings_give_the_same_indices(clean_problem: Problem, encoding: str, solver: str) -> None:
    p = clean_problem
    ids = p.group_int()
    assert sorted(set(ids.tolist())) == [11110, 11140, 41190, 99999]
    mapping: dict[int, Any] = {
        "int64": {g: g for g in p.labels},
        "int32": {g: g for g in p.labels},
        "uint32": {g: g for g in p.labels},
        "codes": {g: k for k, g in enumerate(p.labels)},
        "float": {g: float(g) for g in p.labels},
        "str": {g: f"region-{g}" for g in p.labels},
        "categorical": {g: f"c{g}" for g in p.labels},
        "negative": {g: g - 50_000 for g in p.labels},
        "large_range": {11110: 2**40, 11140: -(2**30), 41190: 7, 99999: 2**25},
        "pandas": {g: g for g in p.labels},
    }[encoding]
    values = [mapping[g] for g in ids.tolist()]
    group: Any = {
        "int32": lambda: np.asarray(values, dtype=np.int32),
        "uint32": lambda: np.asarray(values, dtype=np.uint32),
        "codes": lambda: np.asarray(values, dtype=np.int32),
        "float": lambda: np.asarray(values, dtype=np.float64),
        "str": lambda: np.asarray(values),
        "categorical": lambda: pd.Categorical(values),
        "pandas": lambda: pd.Series(values),
    }.get(encoding, lambda: np.asarray(values, dtype=np.int64))()
    if encoding == "large_range":
        assert np.ptp(group) > 2**24
    want = estimate(p, "int", solver=solver)
    got = estimate(p, group, solver=solver)
    assert list(got.groups) == [*sorted(mapping.values()), "ALL"]
    inverse = {v: k for k, v in mapping.items()}
    got_rows = _by_label(got, inverse)
    want_rows = _by_label(want, {g: g for g in p.labels})
    assert got_rows.keys() == want_rows.keys()
    for key, row in want_rows.items():
        np.testing.assert_allclose(got_rows[key], row, atol=1e-12, rtol=0, equal_nan=True)


def test_no_group_column_gives_a_single_all_index(clean_problem: Problem) -> None:
    p = clean_problem
    single = estimate(p, group=None)
    assert list(single.groups) == ["ALL"]
    assert single.log_index.shape == (1, p.n_periods)
    assert set(single.solver_info) == {"groups"}
    grouped = estimate(p, "int")
    np.testing.assert_allclose(single.log_index[0], grouped.log_index[-1], atol=1e-12, rtol=0)
    assert_matches_reference(single, reference(p, group=None))
    lsqr = estimate(p, group=None, solver="lsqr")
    np.testing.assert_allclose(lsqr.log_index, single.log_index, atol=1e-8, rtol=0)


# --------------------------------------------------------------------------------------------------
# the cell table route


def test_fit_index_on_merged_chunk_tables(problem: Problem) -> None:
    p = problem
    cpu = gpu_hpi.resolve_backend(CPU)
    half = p.n_pairs // 2
    tables = []
    for part in (p.take(np.arange(half)), p.take(np.arange(half, p.n_pairs))):
        pairs = gpu_hpi.prepare_pairs(
            part.prev, part.recent, part.y, part.group_float(), n_periods=p.n_periods, backend=cpu
        )
        tables.append(gpu_hpi.build_cell_table(pairs, cpu))
    merged = gpu_hpi.merge_tables(tables)
    result = gpu_hpi.fit_index(merged, backend=cpu)
    whole = estimate(p)
    assert list(result.groups) == list(whole.groups)
    np.testing.assert_allclose(result.log_index, whole.log_index, atol=1e-12, rtol=0)
    np.testing.assert_allclose(result.se, whole.se, rtol=1e-9, atol=0)
    assert merged.dropped == reference(p).dropped


def test_fit_index_with_pairs_for_lsqr(problem: Problem) -> None:
    cpu = gpu_hpi.resolve_backend(CPU)
    pairs = gpu_hpi.prepare_pairs(
        problem.prev, problem.recent, problem.y, problem.group_float(), n_periods=problem.n_periods, backend=cpu
    )
    table = gpu_hpi.build_cell_table(pairs, cpu)
    result = gpu_hpi.fit_index(table, pairs=pairs, backend=cpu, solver="lsqr")
    assert_matches_reference(result, reference(problem), atol=1e-8, se_rtol=1e-6, stat_rtol=1e-6)


# --------------------------------------------------------------------------------------------------
# errors


def test_unknown_solver(problem: Problem) -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="solver"):
        estimate(problem, solver="qr")


@pytest.mark.parametrize("base_period", [-1, 12, 100])
def test_base_period_out_of_range(problem: Problem, base_period: int) -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="base period"):
        estimate(problem, base_period=base_period)


def test_nothing_to_estimate(problem: Problem) -> None:
    with pytest.raises(gpu_hpi.ConfigError):
        estimate(problem, groups=False, pooled=False)


def test_iterative_fit_needs_pairs(problem: Problem) -> None:
    cpu = gpu_hpi.resolve_backend(CPU)
    pairs = gpu_hpi.prepare_pairs(problem.prev, problem.recent, problem.y, n_periods=problem.n_periods, backend=cpu)
    with pytest.raises(gpu_hpi.ConfigError, match="pairs"):
        gpu_hpi.fit_index(gpu_hpi.build_cell_table(pairs, cpu), backend=cpu, solver="lsmr")


def test_unknown_backend(problem: Problem) -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="backend"):
        gpu_hpi.estimate_index(problem.prev, problem.recent, problem.y, backend="tpu")


def test_gpu_backend_without_cupy_says_how_to_install(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide CuPy (so this runs on any machine) and bypass the resolve_backend cache."""
    for name in ("cupy", "cupyx", "cupyx.scipy", "cupyx.scipy.sparse", "cupyx.scipy.sparse.linalg"):
        monkeypatch.setitem(sys.modules, name, None)
    from gpu_hpi.backend import core

    monkeypatch.setattr(core, "resolve_backend", core.resolve_backend.__wrapped__)
    with pytest.raises(gpu_hpi.BackendUnavailableError, match="pip install"):
        gpu_hpi.estimate_index(problem.prev, problem.recent, problem.y, n_periods=problem.n_periods, backend="gpu")
    with pytest.raises(gpu_hpi.BackendUnavailableError, match="pip install"):
        core.resolve_backend("gpu")
    assert core.resolve_backend("auto").name == "cpu"  # auto falls back to the CPU


def test_gpu_backend_unavailable_here(problem: Problem) -> None:
    """On a machine without CuPy, the plain call (no monkeypatching) fails the same way."""
    try:
        import cupy  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("CuPy is installed here")
    with pytest.raises(gpu_hpi.BackendUnavailableError, match="pip install"):
        gpu_hpi.estimate_index(problem.prev, problem.recent, problem.y, n_periods=problem.n_periods, backend="gpu")


@pytest.mark.parametrize(
    ("prev", "recent", "y", "kwargs", "match"),
    [
        ([0, 1], [1, 2], [0.1, 0.2], {"n_periods": 1}, "at least 2 periods"),
        ([0, 1], [1, 2, 3], [0.1, 0.2], {}, "1-d arrays of one length"),
        ([0.0, 1.0], [1, 2], [0.1, 0.2], {}, "integers"),
        ([0, 1], [1, 2], [1, 2], {}, "floating point"),
        ([0, 1], [1, 2], [0.1, 0.2], {"group": np.array([1, 2, 3])}, "group has shape"),
    ],
)
def test_bad_input_raises_data_error(prev: Any, recent: Any, y: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(gpu_hpi.DataError, match=match):
        gpu_hpi.estimate_index(np.asarray(prev), np.asarray(recent), np.asarray(y), backend=CPU, **kwargs)


def test_solve_spd_equals_numpy_and_takes_lu_where_cholesky_fails() -> None:
    """The host's Cholesky route against numpy's LU solve and inverse, with one indefinite system."""
    from gpu_hpi.estimation.normal import solve_spd

    rng = np.random.default_rng(12)
    a = rng.normal(size=(5, 9, 9))
    lap = a @ a.transpose(0, 2, 1) + np.eye(9)
    lap[3] = np.diag(np.r_[-1.0, np.ones(8)])  # symmetric, not positive definite
    lap[4, :3, :3] = [[4.0, 2.0, 1.0], [2.0, 5.0, 3.0], [1.0, 3.0, -2.0]]  # fails at the third pivot,
    lap[4, :3, 3:] = lap[4, 3:, :3] = 0.0  # after potrf overwrote the first two diagonal entries
    rhs = rng.normal(size=(5, 9))
    solved, diag = solve_spd(np, lap.copy(), rhs, covariance=True)  # overwrites the systems
    np.testing.assert_allclose(solved, np.linalg.solve(lap, rhs[:, :, None])[:, :, 0], rtol=1e-10)
    np.testing.assert_allclose(diag, np.diagonal(np.linalg.inv(lap), axis1=1, axis2=2), rtol=1e-10)
    assert diag[3, 0] == -1.0
    # the solve alone (posv) and the inverse alone (potrf, potri): the same numbers
    solved_only, no_diag = solve_spd(np, lap.copy(), rhs, covariance=False)
    np.testing.assert_array_equal(solved_only, solved)
    np.testing.assert_array_equal(solve_spd(np, lap.copy(), None, covariance=True)[1], diag)
    assert no_diag is None and solve_spd(np, lap, None, covariance=False) == (None, None)


def test_one_blas_thread_while_it_lasts() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    from gpu_hpi.estimation.lapack import one_blas_thread

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        with one_blas_thread():
            assert blas_threads() == {1}
        assert blas_threads() == {2}
