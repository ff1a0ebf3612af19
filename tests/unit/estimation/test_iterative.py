"""LSQR and LSMR on the dummy matrix (estimation/iterative.py): the implicit operator and the explicit
CSR against a dense matrix built independently from the pairs, the namespace LSQR against SciPy's
step for step, the solvers against the exact solve and the reference, their stop reasons and
iteration limits."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from helpers import estimate, reference
from reference import (
    Problem,
    assert_matches_reference,
    base_component,
    connected_problem,
    random_problem,
    reference_index,
    valid_mask,
)

import gpu_hpi
from gpu_hpi.data.design import design_matrix, dummy_columns
from gpu_hpi.estimation import iterative
from gpu_hpi.estimation.identify import identify

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = gpu_hpi.resolve_backend("cpu")


def dense_design(p: Problem, base: int, min_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """(the dense -1/+1 matrix over the estimated (group, period)s in (group, period) order, the
    input rows it keeps): valid pairs of groups with at least min_pairs of them, in the base
    period's connected component (union-find), one column per component period but the base."""
    t = p.n_periods
    valid = valid_mask(p.prev, p.recent, p.y, p.group_float(), t)
    columns: dict[tuple[int, int], int] = {}
    component: dict[int, np.ndarray] = {}
    for g in sorted(p.labels):
        mine = valid & (p.gid == g) & ~p.missing
        if mine.sum() < min_pairs:
            continue
        component[g] = base_component(p.prev[mine], p.recent[mine], t, base)
        for period in np.flatnonzero(component[g]):
            if period != base:
                columns[(g, int(period))] = len(columns)
    rows = [
        k
        for k in range(p.n_pairs)
        if valid[k] and not p.missing[k] and p.gid[k] in component and component[p.gid[k]][p.prev[k]]
    ]
    z = np.zeros((len(rows), len(columns)))
    for r, k in enumerate(rows):
        g, i, j = int(p.gid[k]), int(p.prev[k]), int(p.recent[k])
        if (g, i) in columns:
            z[r, columns[(g, i)]] -= 1.0
        if (g, j) in columns:
            z[r, columns[(g, j)]] += 1.0
    return z, np.asarray(rows, dtype=np.int64)


def engine_columns(p: Problem, base: int, min_pairs: int) -> Any:
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, backend=CPU)
    ident = identify(gpu_hpi.build_cell_table(pairs, CPU), base, min_pairs)
    column, _ = iterative.estimated_columns(ident)
    return dummy_columns(CPU, pairs, column, ident.identified)


@pytest.mark.parametrize(("seed", "base", "min_pairs"), [(1, 0, 12), (2, 3, 1), (3, 7, 5)])
def test_operators_give_the_dense_matrix_products(seed: int, base: int, min_pairs: int) -> None:
    """Invalid pairs, unidentified periods, a skipped group and several groups."""
    p = random_problem(np.random.default_rng(seed))
    z, rows = dense_design(p, base, min_pairs)
    cols = engine_columns(p, base, min_pairs)
    assert z.shape[1] > 0 and z.shape == cols.shape
    np.testing.assert_array_equal(np.flatnonzero(cols.rows), rows)
    np.testing.assert_array_equal(cols.y, p.y[rows])
    np.testing.assert_array_equal(cols.column_counts(), np.abs(z).sum(axis=0))

    rng = np.random.default_rng(seed + 100)
    x, u = rng.normal(size=z.shape[1]), rng.normal(size=z.shape[0])
    np.testing.assert_allclose(cols.matvec(x), z @ x, rtol=0, atol=1e-14)
    np.testing.assert_allclose(cols.rmatvec(u), z.T @ u, rtol=1e-12, atol=1e-12)

    design = design_matrix(CPU, cols)
    assert design.matrix.indices.dtype == np.int32
    np.testing.assert_array_equal(design.matrix.toarray(), z)
    np.testing.assert_array_equal(design.transpose.toarray(), z.T)

    d = 1.0 / np.sqrt(np.abs(z).sum(axis=0))
    for name in iterative.OPERATORS:
        op = iterative.pair_operator(CPU, cols, name)
        np.testing.assert_allclose(op.matvec(x), z @ (d * x), rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(op.rmatvec(u), d * (z.T @ u), rtol=1e-12, atol=1e-12, err_msg=name)
        unscaled = iterative.pair_operator(CPU, cols, name, scale=False)
        np.testing.assert_allclose(unscaled.rmatvec(u), z.T @ u, rtol=1e-12, atol=1e-12, err_msg=name)


def test_unknown_operator_is_refused() -> None:
    p = connected_problem(np.random.default_rng(4))
    with pytest.raises(gpu_hpi.ConfigError, match="operator must be one of"):
        gpu_hpi.estimate_index(p.prev, p.recent, p.y, n_periods=p.n_periods, backend=CPU, solver="lsqr", operator="x")


@pytest.mark.parametrize("operator", iterative.OPERATORS)
@pytest.mark.parametrize("solver", ["lsqr", "lsmr"])
@pytest.mark.parametrize("seed", [5, 6])
def test_iterative_solvers_equal_the_exact_solve(solver: str, operator: str, seed: int) -> None:
    """With the default tolerance, to 1e-10 in the log index, against the normal equations and the
    lstsq reference."""
    p = random_problem(np.random.default_rng(seed), n_periods=20, pairs_per_group=400, noise=0.2)
    args = (p.prev, p.recent, p.y, p.group_float())
    exact = gpu_hpi.estimate_index(*args, n_periods=p.n_periods, backend=CPU, base_period=2)
    got = gpu_hpi.estimate_index(
        *args, n_periods=p.n_periods, backend=CPU, base_period=2, solver=solver, operator=operator
    )
    np.testing.assert_array_equal(np.isnan(got.log_index), np.isnan(exact.log_index))
    assert np.nanmax(np.abs(got.log_index - exact.log_index)) <= 1e-10
    ref = reference_index(*args, n_periods=p.n_periods, base_period=2)
    assert np.nanmax(np.abs(got.log_index - ref.log_index)) <= 1e-10
    assert got.solver_info["groups"]["stop_reason"] != iterative.LSQR_STOP_REASONS[7]


@pytest.mark.parametrize("base_period", [0, 7])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("solver", ["lsqr", "lsmr"])
def test_iterative_matches_reference(solver: str, seed: int, base_period: int) -> None:
    p = random_problem(np.random.default_rng(seed))
    result = estimate(p, solver=solver, base_period=base_period)
    ref = reference(p, base_period=base_period)
    assert_matches_reference(result, ref, atol=1e-8, se_rtol=1e-6, stat_rtol=1e-6)


def test_column_scaling_cuts_iterations_on_unequal_periods() -> None:
    """A period with a hundred times the sales of the others: Jacobi scaling evens the columns."""
    rng = np.random.default_rng(8)
    p = connected_problem(rng, n_periods=40, n_pairs=2000)
    busy = rng.integers(0, 39, 20000)
    prev = np.concatenate([p.prev, np.minimum(busy, 19)])
    recent = np.concatenate([p.recent, np.where(busy < 20, 20, busy + 1)])
    y = np.concatenate([p.y, rng.normal(0, 0.1, busy.shape[0])])
    pairs = gpu_hpi.prepare_pairs(prev, recent, y, n_periods=40, backend=CPU)
    ident = identify(gpu_hpi.build_cell_table(pairs, CPU), 0, 1)
    steps = {}
    for scale in (False, True):
        beta, steps[scale], _ = iterative.iterative_beta(pairs, ident, CPU, "lsqr", tol=1e-12, scale=scale)
        steps[scale, "beta"] = beta
    assert steps[True] < steps[False]
    np.testing.assert_allclose(steps[True, "beta"], steps[False, "beta"], atol=1e-9)


def test_lsqr_on_the_scaled_operator_follows_scipy() -> None:
    """The namespace LSQR takes SciPy's steps on the same (scaled, implicit) operator."""
    p = random_problem(np.random.default_rng(9))
    cols = engine_columns(p, 0, 1)
    op = iterative.pair_operator(CPU, cols)
    linear = scipy.sparse.linalg.LinearOperator(op.shape, matvec=op.matvec, rmatvec=op.rmatvec, dtype=np.float64)
    x, istop, itn, *_ = scipy.sparse.linalg.lsqr(linear, cols.y, atol=1e-12, btol=1e-12)
    sol = iterative.lsqr(np, op, cols.y, atol=1e-12, btol=1e-12)
    assert (sol.iterations, sol.istop) == (itn, istop)
    np.testing.assert_allclose(sol.x, x, atol=1e-12, rtol=0)


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
