"""backend/lapack.py: one BLAS thread while the solves run a thread per core; the revision's solve
of systems copied one at a time."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def test_one_blas_thread_while_it_lasts() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    from gpu_hpi.backend.lapack import one_blas_thread

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        with one_blas_thread():
            assert blas_threads() == {1}
        assert blas_threads() == {2}


def test_copy_solve_solves_each_system_in_place_and_by_lu_where_not_positive_definite() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 9, 12))
    lap = x @ x.transpose(0, 2, 1)
    lap[2, 1, 1] = -5.0  # not positive definite: solved by LU
    before = lap.copy()
    systems, size = np.array([3, 2, 0]), 6
    rhs = rng.normal(size=(3, size))
    want = [np.linalg.solve(lap[g, :size, :size], r) for g, r in zip(systems, rhs, strict=True)]
    from gpu_hpi.backend.lapack import copy_solve

    copy_solve(lap, systems, size, rhs)
    np.testing.assert_allclose(rhs, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(lap, before)
