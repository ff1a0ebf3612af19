"""LSQR / LSMR on the dummy matrix (issue 16): the implicit operator and the explicit CSR against
a dense matrix built independently from the pairs, and the solvers against the exact solve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse.linalg
from reference import Problem, base_component, connected_problem, random_problem, reference_index, valid_mask

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


def test_the_device_matrix_refuses_more_entries_than_int32_indices_hold() -> None:
    """cupyx keeps int32 indices whatever it is given: past 2^31 entries the CSR would wrap."""
    import dataclasses

    from gpu_hpi.data.design import DummyColumns

    device = dataclasses.replace(CPU, name="gpu")  # only its name is read before the refusal
    huge = np.broadcast_to(np.float64(0.0), (2**30,))  # 2^31 entries, no memory
    cols = DummyColumns(huge, huge, huge, huge, 10)
    with pytest.raises(gpu_hpi.ConfigError, match="operator=implicit"):
        design_matrix(device, cols)
