"""tests/parity.py's decorator, run on the CPU with the numpy backend standing in for the device:
it gives the body each backend and the test's fixtures, and fails where the results differ."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
from parity import CPU, assert_same_results, backend_parity
from reference import Problem

import gpu_hpi


@pytest.fixture
def gpu() -> gpu_hpi.Backend:
    """A stand-in for the device backend (tests/gpu has the real one)."""
    return gpu_hpi.resolve_backend("cpu")


def fit(backend: gpu_hpi.Backend, problem: Problem, solver: str) -> Any:
    p = problem
    arrays = (backend.asarray(a) for a in (p.prev, p.recent, p.y))
    result = gpu_hpi.estimate_index(*arrays, p.group_float(), n_periods=p.n_periods, backend=backend, solver=solver)
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, backend=backend)
    return result, gpu_hpi.build_cell_table(pairs, backend), {"pairs": pairs.n_pairs}


@pytest.mark.parametrize("solver", ["normal", "lsqr"])
@backend_parity(atol=1e-9, rtol=1e-7)
def test_pytest_gives_the_body_its_fixtures(backend: gpu_hpi.Backend, problem: Problem, solver: str) -> Any:
    return fit(backend, problem, solver)


def test_the_body_runs_on_numpy_then_on_the_gpu_fixture(problem: Problem, gpu: gpu_hpi.Backend) -> None:
    calls: list[Any] = []

    def body(backend: gpu_hpi.Backend, problem: Problem, solver: str) -> Any:
        calls.append(backend)
        return fit(backend, problem, solver)

    test = backend_parity(atol=1e-9, rtol=1e-7)(body)
    assert list(inspect.signature(test).parameters) == ["gpu", "problem", "solver"]
    test(gpu=gpu, problem=problem, solver="normal")
    assert calls[0] is CPU and calls[1] is gpu and len(calls) == 2


def test_differences_fail_with_where_they_are(problem: Problem) -> None:
    table = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(problem.prev, problem.recent, problem.y, n_periods=problem.n_periods, backend=CPU), CPU
    )
    assert_same_results(table, table, atol=0, rtol=0)
    moved = table.sums["y"].copy()
    moved[0] += 1e-6
    shifted = gpu_hpi.CellTable(**{**table.__dict__, "sums": {**table.sums, "y": moved}})
    with pytest.raises(AssertionError, match=r"result\.sums\['y'\]"):
        assert_same_results(shifted, table, atol=1e-9, rtol=1e-9)
    with pytest.raises(AssertionError, match=r"result\.count"):
        assert_same_results(gpu_hpi.CellTable(**{**table.__dict__, "count": table.count + 1}), table, atol=1, rtol=1)
    with pytest.raises(AssertionError, match="keys"):
        assert_same_results({"a": 1}, {"b": 1}, atol=0, rtol=0)
    with pytest.raises(AssertionError, match=r"NaN|nan"):
        assert_same_results(np.array([1.0, np.nan]), np.array([1.0, 2.0]), atol=1, rtol=1)
