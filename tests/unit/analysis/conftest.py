"""The analyses' data (diagnostics_reference.py) and its index, once per test module."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostics_reference import Data, T, estimate, make_data

import gpu_hpi


@pytest.fixture(scope="module")
def data() -> Data:
    return make_data()


@pytest.fixture(scope="module")
def result(data: Data) -> gpu_hpi.IndexResult:
    return estimate(data, np.ones(len(data.y), bool), T, 0, "bmn")
