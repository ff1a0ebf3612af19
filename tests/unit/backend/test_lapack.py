"""backend/lapack.py: one BLAS thread while the solves run a thread per core."""

from __future__ import annotations

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
