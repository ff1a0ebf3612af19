"""backend/ops.py: the operations numpy and CuPy each do their own way, on the host path (the
device path: tests/gpu)."""

from __future__ import annotations

import numpy as np
import scipy.sparse

from gpu_hpi.backend.ops import product_transpose, run_sums, sparse_entries_limit


def test_run_sums_equal_a_bincount_by_run() -> None:
    rng = np.random.default_rng(3)
    keys = np.sort(rng.integers(0, 40, size=500))
    values = rng.normal(size=500)
    starts = np.ones(keys.shape, dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    (first,) = np.nonzero(starts)
    want = np.bincount(np.cumsum(starts) - 1, weights=values)
    np.testing.assert_allclose(run_sums(np, values, starts, first), want, rtol=1e-13, atol=1e-13)
    empty = np.zeros(0)
    assert run_sums(np, empty, empty.astype(bool), np.zeros(0, np.int64)).shape == (0,)


def test_the_host_transpose_is_a_view_and_has_no_entry_limit() -> None:
    matrix = scipy.sparse.random(7, 4, density=0.5, format="csr", random_state=1)
    transpose = product_transpose(np, matrix)
    np.testing.assert_array_equal(transpose.toarray(), matrix.toarray().T)
    assert np.shares_memory(transpose.data, matrix.data)  # SciPy's CSC view of the same arrays: no copy
    assert sparse_entries_limit(np) is None
