"""backend/cuda.py: the device's facts from CUDA's runtime API without CuPy (a stand-in of
cuda-bindings' runtime module: tests/fake_cuda.py), and CuPy's settings applied on its first use."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from fake_cuda import Status, runtime_stand_in

from gpu_hpi.backend import cuda


def test_device_facts_from_the_runtime_without_cupy(runtime: Any) -> None:
    assert cuda.device_count() == 1
    assert cuda.device_name() == "NVIDIA H200"  # the C string's padding dropped
    assert cuda.memory_info() == (140, 141)
    cuda.create_context()
    cuda.synchronize()
    assert runtime.calls == ["count", "device", "properties", "memory", "free", "synchronize"]
    assert "cupy" not in sys.modules


def test_a_failed_call_names_cudas_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda, "_runtime", lambda: runtime_stand_in(status=Status.cudaErrorNoDevice))
    with pytest.raises(RuntimeError, match="cudaGetDeviceCount: cudaErrorNoDevice"):
        cuda.device_count()
    assert cuda.device_name() == "CUDA device"  # a description only: never fails a run


def test_settings_wait_for_cupys_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[Any] = []
    monkeypatch.setattr(cuda, "_before_first_use", [])
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    cuda.when_cupy_is_used(applied.append)
    assert applied == []
    stand_in = types.ModuleType("cupy")
    monkeypatch.setitem(sys.modules, "cupy", stand_in)
    assert cuda.cupy_module() is stand_in and applied == [stand_in]
    cuda.when_cupy_is_used(applied.append)  # in use already: applied at once
    assert applied == [stand_in, stand_in]
