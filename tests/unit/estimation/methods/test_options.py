"""The methods' names and options (estimation/methods/options.py): unknown names refused."""

from __future__ import annotations

import pytest
from methods_reference import (
    estimate,
    method_problem,
)

import gpu_hpi
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def test_unknown_method() -> None:
    p = method_problem(1)
    with pytest.raises(gpu_hpi.ConfigError, match="method must be one of"):
        estimate(p, "hedonic")
    with pytest.raises(gpu_hpi.ConfigError, match="method must be one of"):
        MethodOptions(name="Case-Shiller")
    with pytest.raises(gpu_hpi.ConfigError, match="stage2"):
        MethodOptions(name="case_shiller", stage2="cubic")
