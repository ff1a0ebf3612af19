"""The library's entry points (estimation/api.py: estimate_index, fit_index) against the independent
dense reference (tests/reference.py): every solver, the groups' and the pooled index, noise-free
pairs, cell tables merged from chunks, what they refuse; and properties of random problems
(hypothesis): the solvers agree, the order of the pairs does not matter, a trend added to y moves
the index by it."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from helpers import estimate, reference
from hypothesis import given
from hypothesis import strategies as st
from reference import (
    SETTINGS,
    Problem,
    assert_matches_reference,
    connected_problem,
    problems,
    random_problem,
    reference_index,
)

import gpu_hpi

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = "cpu"
CPU_BACKEND = gpu_hpi.resolve_backend("cpu")  # the property tests' helpers take the Backend itself


def table_of(p: Problem) -> gpu_hpi.CellTable:
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, backend=CPU_BACKEND)
    return gpu_hpi.build_cell_table(pairs, CPU_BACKEND)


def fit(p: Problem, **options: object) -> gpu_hpi.IndexResult:
    return gpu_hpi.estimate_index(
        p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, backend=CPU_BACKEND, min_pairs=1, **options
    )


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


def test_a_region_named_all_is_refused_and_one_alone_is_the_pooled_index(clean_problem: Problem) -> None:
    """A region "ALL" beside others would be a second row of the pooled index's name (charts and the
    report would take it for the pooled index); a single group "ALL" is the index of pairs without groups."""
    p = clean_problem
    labels = np.asarray(["ALL", "B", "C"], dtype=object)[p.group_int() % 3]
    for solver in ("normal", "lsqr"):
        with pytest.raises(gpu_hpi.DataError, match='a group is named "ALL", the name of the pooled index'):
            gpu_hpi.estimate_index(p.prev, p.recent, p.y, labels, n_periods=p.n_periods, backend="cpu", solver=solver)
    pooled = gpu_hpi.estimate_index(p.prev, p.recent, p.y, labels, n_periods=p.n_periods, backend="cpu", groups=False)
    assert list(pooled.groups) == ["ALL"]  # no group rows: nothing to take for the pooled index
    alone = gpu_hpi.estimate_index(
        p.prev, p.recent, p.y, np.full(p.n_pairs, "ALL", dtype=object), n_periods=p.n_periods, backend="cpu"
    )
    np.testing.assert_array_equal(alone.log_index, estimate(p, group=None).log_index)


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


@pytest.mark.parametrize("method", ["bmn", "robust"])
def test_pairs_that_cannot_be_the_tables_are_refused(problem: Problem, method: str) -> None:
    """Pairs over other periods, without the table's groups or fewer than it holds: the solvers indexed
    out of range (lsqr), hit a singular system (robust) or fitted a flat index of the wrong pairs."""
    p, cpu = problem, gpu_hpi.resolve_backend(CPU)
    solver = "lsqr" if method == "bmn" else "normal"

    def pairs_of(part: Problem, group: Any, n_periods: int = p.n_periods) -> gpu_hpi.Pairs:
        return gpu_hpi.prepare_pairs(part.prev, part.recent, part.y, group, n_periods=n_periods, backend=cpu)

    table = gpu_hpi.build_cell_table(pairs_of(p, p.group_float()), cpu)
    half = p.take(np.arange(p.n_pairs // 2))
    wrong = {
        "span 13 periods, their cell table 12": pairs_of(p, p.group_float(), p.n_periods + 1),
        "have no groups": pairs_of(p, None),
        "more than the": pairs_of(half, half.group_float()),
    }
    assert p.n_periods == 12
    for message, pairs in wrong.items():
        with pytest.raises(gpu_hpi.DataError, match=message):
            gpu_hpi.fit_index(table, pairs=pairs, backend=cpu, solver=solver, method=method)


@pytest.mark.parametrize("limits", [{"tol": 1.0}, {"tol": 0.0}, {"iter_lim": 0}, {"iter_lim": -1}])
def test_solver_limits_that_cannot_work_are_refused(problem: Problem, limits: dict[str, float]) -> None:
    """tol >= 1 stopped lsqr at once and iter_lim=-1 ran none of its steps: a wrong index, no error."""
    with pytest.raises(gpu_hpi.ConfigError, match=r"solver\.tol must be between 0 and 1|solver\.iter_lim must be at"):
        estimate(problem, solver="lsqr", **limits)


def test_base_period_and_min_pairs_are_integers(problem: Problem) -> None:
    """A label (the command line's form) or a float was a raw TypeError or ValueError."""
    for options in ({"base_period": "3"}, {"min_pairs": "x"}, {"min_pairs": 2.5}):
        with pytest.raises(gpu_hpi.ConfigError, match=r"base_period \(a position\) and min_pairs must be integers"):
            estimate(problem, **options)
    assert estimate(problem, base_period=np.int64(2)).base_period == 2


def test_a_singular_weighted_fit_is_one_line(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last guard of the weighted methods: a factorization that fails is a DataError naming
    the method, not numpy's LinAlgError (a traceback on the command line)."""
    from gpu_hpi.estimation import api

    def singular(*args: Any, **kwargs: Any) -> Any:
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(api, "fit_method", singular)
    with pytest.raises(gpu_hpi.DataError, match=r"method=case_shiller: the weighted fit of the groups is singular"):
        estimate(problem, method="case_shiller")


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


@SETTINGS
@given(p=problems(), base=st.integers(0, 9))
def test_normal_and_lsqr_agree(p: Problem, base: int) -> None:
    base %= p.n_periods
    normal = fit(p, base_period=base)
    lsqr = fit(p, base_period=base, solver="lsqr")
    np.testing.assert_array_equal(np.isnan(lsqr.log_index), np.isnan(normal.log_index))
    np.testing.assert_allclose(lsqr.log_index, normal.log_index, atol=1e-7, rtol=0, equal_nan=True)
    np.testing.assert_allclose(lsqr.se, normal.se, rtol=1e-5, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(lsqr.n_used, normal.n_used)


@SETTINGS
@given(p=problems(), seed=st.integers(0, 2**32 - 1))
def test_index_does_not_depend_on_the_order_of_pairs(p: Problem, seed: int) -> None:
    shuffled = p.take(np.random.default_rng(seed).permutation(p.n_pairs))
    a, b = fit(p), fit(shuffled)
    np.testing.assert_allclose(b.log_index, a.log_index, atol=1e-12, rtol=0, equal_nan=True)
    np.testing.assert_allclose(b.se, a.se, rtol=1e-9, atol=1e-15, equal_nan=True)
    np.testing.assert_array_equal(b.period_pairs, a.period_pairs)
    np.testing.assert_array_equal(b.n_used, a.n_used)
    assert table_of(shuffled).dropped == table_of(p).dropped


@SETTINGS
@given(p=problems(invalid=False), shift=st.lists(st.floats(-1, 1), min_size=10, max_size=10))
def test_adding_a_trend_to_y_shifts_the_index_by_it(p: Problem, shift: list[float]) -> None:
    """y + d[j] - d[i] moves the log index by d - d[base] where identified; the residuals stay."""
    d = np.asarray(shift[: p.n_periods])
    moved = Problem(p.prev, p.recent, p.y + d[p.recent] - d[p.prev], p.gid, p.missing, p.n_periods, p.labels)
    a, b = fit(p), fit(moved)
    np.testing.assert_allclose(b.log_index, a.log_index + (d - d[0]), atol=1e-9, rtol=0, equal_nan=True)
    np.testing.assert_allclose(b.sigma2, a.sigma2, rtol=1e-6, atol=1e-12, equal_nan=True)
