"""The compute backend (backend/core.py): an unknown backend refused, the GPU backend without CuPy or
without a device refused in one line that says why, numpy arrays taken as they are on the CPU."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fake_cuda import Status, runtime_stand_in
from reference import (
    Problem,
)

import gpu_hpi
from gpu_hpi.backend import cuda
from gpu_hpi.backend.core import resolve_backend
from gpu_hpi.errors import BackendUnavailableError


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_unknown_backend(problem: Problem) -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="backend"):
        gpu_hpi.estimate_index(problem.prev, problem.recent, problem.y, backend="tpu")


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_gpu_backend_without_cupy_says_how_to_install(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide CuPy (so this runs on any machine) and bypass the resolve_backend cache."""
    for name in ("cupy", "cupyx", "cupyx.scipy", "cupyx.scipy.sparse", "cupyx.scipy.sparse.linalg"):
        monkeypatch.setitem(sys.modules, name, None)
    from gpu_hpi.backend import core

    monkeypatch.setattr(core, "resolve_backend", core.resolve_backend.__wrapped__)
    with pytest.raises(gpu_hpi.BackendUnavailableError, match="pip install"):
        gpu_hpi.estimate_index(problem.prev, problem.recent, problem.y, n_periods=problem.n_periods, backend="gpu")
    with pytest.raises(gpu_hpi.BackendUnavailableError, match="pip install"):
        core.resolve_backend("gpu")
    assert core.resolve_backend("auto").name == "cpu"  # auto falls back to the CPU


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_gpu_backend_unavailable_here(problem: Problem) -> None:
    """On a machine without CuPy, the plain call (no monkeypatching) fails the same way."""
    try:
        import cupy  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("CuPy is installed here")
    with pytest.raises(gpu_hpi.BackendUnavailableError, match="pip install"):
        gpu_hpi.estimate_index(problem.prev, problem.recent, problem.y, n_periods=problem.n_periods, backend="gpu")


def test_the_gpu_backend_without_a_device_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_hpi.backend import core

    monkeypatch.setattr(core.importlib.util, "find_spec", lambda name: object())  # "CuPy is installed"
    monkeypatch.setattr(cuda, "_runtime", lambda: runtime_stand_in(count=0))
    with pytest.raises(BackendUnavailableError, match="has no CUDA device"):
        core._gpu_backend()
    monkeypatch.setattr(cuda, "_runtime", lambda: runtime_stand_in(status=Status.cudaErrorNoDevice))
    with pytest.raises(BackendUnavailableError, match=r"no usable CUDA device .*cudaErrorNoDevice"):
        core._gpu_backend()
    monkeypatch.setattr(cuda, "_runtime", runtime_stand_in)
    backend = core._gpu_backend()
    assert backend.device == "GPU NVIDIA H200" and backend.xp_module == "cupy"  # found, not imported


def test_asarray_on_the_cpu_is_numpy_without_staging() -> None:
    cpu = resolve_backend("cpu")
    a = np.arange(1 << 18, dtype=np.int64)  # 2 MB: above the pinned threshold, which is GPU only
    assert cpu.asarray(a) is a
    np.testing.assert_array_equal(cpu.asarray(a, dtype=np.float64), a.astype(np.float64))
