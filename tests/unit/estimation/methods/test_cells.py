"""What the methods compute per cell and pair (estimation/methods/cells.py): the |e| pass over the
pairs in many small chunks, and the pairs' cells found by binary search in large key spaces, give
the same fits."""

from __future__ import annotations

import numpy as np
import pytest
from methods_reference import (
    ALL_METHODS,
    estimate,
    fit_with_pairs,
    method_problem,
)

from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def test_case_shiller_absolute_pair_pass_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The |e| pass over the pairs in many small chunks gives the one-chunk result."""
    from gpu_hpi.estimation.methods.cells import pair_pass

    p = method_problem(1)
    method = MethodOptions(name="case_shiller", stage2="absolute")
    whole = fit_with_pairs(p, method)
    monkeypatch.setattr(pair_pass, "__defaults__", (37,))
    chunked = fit_with_pairs(p, method)
    np.testing.assert_allclose(chunked.log_index, whole.log_index, atol=1e-12, rtol=0, equal_nan=True)
    np.testing.assert_allclose(chunked.se, whole.se, rtol=1e-10, equal_nan=True)


def test_case_shiller_absolute_pair_pass_in_chunks_with_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_hpi.estimation.methods.cells import pair_pass

    p = method_problem(1)
    method = MethodOptions(name="case_shiller", stage2="absolute")
    whole = fit_with_pairs(p, method, prices=True)
    monkeypatch.setattr(pair_pass, "__defaults__", (37,))
    chunked = fit_with_pairs(p, method, prices=True)
    np.testing.assert_allclose(chunked.log_index, whole.log_index, atol=1e-12, rtol=0, equal_nan=True)


@pytest.mark.parametrize("name", ["case_shiller_absolute", "robust"])
def test_pair_methods_with_sparse_cell_lookup(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-pair passes find the pairs' cells by binary search in large key spaces: same fit."""
    from gpu_hpi.data import cells

    p = method_problem(7, outliers=0.03)
    dense = estimate(p, ALL_METHODS[name])
    monkeypatch.setattr(cells, "DENSE_KEY_LIMIT", 0)
    sparse = estimate(p, ALL_METHODS[name])
    np.testing.assert_allclose(sparse.log_index, dense.log_index, atol=1e-12, rtol=0, equal_nan=True)
    np.testing.assert_allclose(sparse.se, dense.se, rtol=1e-10, equal_nan=True)
