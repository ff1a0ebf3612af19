"""The dummy (design) matrix of the pairs (data/design.py): its device CSR refused past int32 indices.
Its products against a dense matrix: estimation/test_iterative.py."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_hpi
from gpu_hpi.data.design import design_matrix

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = gpu_hpi.resolve_backend("cpu")


def test_the_device_matrix_refuses_more_entries_than_int32_indices_hold() -> None:
    """cupyx keeps int32 indices whatever it is given: past 2^31 entries the CSR would wrap."""
    import dataclasses

    from gpu_hpi.data.design import DummyColumns

    device = dataclasses.replace(CPU, name="gpu")  # only its name is read before the refusal
    huge = np.broadcast_to(np.float64(0.0), (2**30,))  # 2^31 entries, no memory
    cols = DummyColumns(huge, huge, huge, huge, 10)
    with pytest.raises(gpu_hpi.ConfigError, match="operator=implicit"):
        design_matrix(device, cols)
