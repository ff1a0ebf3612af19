"""The dummy (design) matrix of the pairs (data/design.py): its device CSR refused past int32 indices.
Its products against a dense matrix: estimation/test_iterative.py."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_hpi
from gpu_hpi.data.design import design_matrix

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = gpu_hpi.resolve_backend("cpu")


def test_a_matrix_past_the_namespaces_entry_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """cupyx keeps int32 indices whatever it is given (backend.ops.sparse_entries_limit): past its
    limit the CSR would wrap, so the explicit matrix is refused for the implicit operator."""
    from gpu_hpi.data import design
    from gpu_hpi.data.design import DummyColumns

    n = 6
    cols = DummyColumns(np.zeros(n, np.int64), np.ones(n, np.int64), np.zeros(n), np.arange(n), 3)
    monkeypatch.setattr(design, "sparse_entries_limit", lambda xp: 2 * n - 1)
    with pytest.raises(gpu_hpi.ConfigError, match="operator=implicit"):
        design_matrix(CPU, cols)
    monkeypatch.setattr(design, "sparse_entries_limit", lambda xp: 2 * n)
    assert design_matrix(CPU, cols).matrix.shape == (n, 3)
