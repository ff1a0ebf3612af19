"""The exact solve (estimation/normal.py): the groups solved in batches give the one-batch fit, the
host's Cholesky route against numpy's LU solve and inverse."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import estimate, reference
from reference import (
    Problem,
    assert_matches_reference,
)

from gpu_hpi.estimation import normal

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def test_group_batches_give_the_same_fit(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = estimate(problem)
    for name in ("gpu", "cpu"):  # two groups a batch, on the device and the host
        monkeypatch.setitem(normal.SOLVE_CELLS, name, 2 * problem.n_periods**2)
    batched = estimate(problem)
    np.testing.assert_allclose(batched.log_index, whole.log_index, atol=1e-12, rtol=0)
    np.testing.assert_allclose(batched.se, whole.se, rtol=1e-10, atol=0)
    assert_matches_reference(batched, reference(problem))


def test_only_groups_with_a_period_to_estimate_are_solved(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    """A skipped group, or one that reaches only its base period, has no system: the others' fits
    and every group's statistics are those of the reference, one group a batch or all in one."""
    solve = normal.solve_spd
    systems: list[int] = []

    def counted(xp: object, lap: np.ndarray, *args: object, **kwargs: object) -> object:
        systems.append(lap.shape[0])
        return solve(xp, lap, *args, **kwargs)

    monkeypatch.setattr(normal, "solve_spd", counted)
    want = reference(problem)
    estimated = int((want.n_params > 0).sum())
    assert 0 < estimated < len(want.groups)  # the fixture has groups of both kinds
    assert_matches_reference(estimate(problem), want)
    assert sum(systems) == estimated
    systems.clear()
    for name in ("gpu", "cpu"):
        monkeypatch.setitem(normal.SOLVE_CELLS, name, problem.n_periods**2)
    assert_matches_reference(estimate(problem), want)
    assert systems == [1] * estimated


def test_solver_info_of_normal(problem: Problem) -> None:
    expected = {"method": "bmn", "solver": "normal"}
    assert estimate(problem).solver_info == {"groups": expected, "pooled": expected}


def test_solve_spd_equals_numpy_and_takes_lu_where_cholesky_fails() -> None:
    """The host's Cholesky route against numpy's LU solve and inverse, with one indefinite system."""
    from gpu_hpi.backend.ops import solve_spd

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
