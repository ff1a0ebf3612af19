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


@pytest.mark.parametrize("tuning", [{"huber_c": 0.0}, {"huber_c": -1.0}, {"tol": 0.0}, {"max_iter": 0}])
def test_tunings_that_cannot_work_are_refused(tuning: dict[str, float]) -> None:
    """The library's own check (the command line's method options come through it too)."""
    with pytest.raises(gpu_hpi.ConfigError, match=r"method\.huber_c and method\.tol must be positive"):
        MethodOptions(name="robust", **tuning)  # type: ignore[arg-type]
