"""backend/cuda.py: the device's facts from CUDA's runtime API without CuPy (a stand-in of
cuda-bindings' runtime module here: its calls return the status first), CuPy's settings applied on
its first use, and the warm-up's hint of whether a run will use CuPy at all."""

from __future__ import annotations

import enum
import sys
import types
from typing import Any

import pytest
from helpers import compose_config

from gpu_hpi.app.preflight import uses_device_arrays
from gpu_hpi.backend import cuda
from gpu_hpi.errors import BackendUnavailableError


class Status(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorNoDevice = 100


def runtime_stand_in(count: int = 1, status: Status = Status.cudaSuccess) -> types.ModuleType:
    calls: list[str] = []
    runtime = types.ModuleType("cuda.bindings.runtime")
    props = types.SimpleNamespace(name=b"NVIDIA H200" + b"\0" * 245)

    def call(name: str, *values: Any) -> Any:
        def function(*args: Any) -> tuple[Any, ...]:
            calls.append(name)
            return (status, *values)

        return function

    runtime.cudaError_t = Status  # type: ignore[attr-defined]
    runtime.cudaGetDeviceCount = call("count", count)  # type: ignore[attr-defined]
    runtime.cudaGetDevice = call("device", 0)  # type: ignore[attr-defined]
    runtime.cudaGetDeviceProperties = call("properties", props)  # type: ignore[attr-defined]
    runtime.cudaMemGetInfo = call("memory", 140, 141)  # type: ignore[attr-defined]
    runtime.cudaFree = call("free")  # type: ignore[attr-defined]
    runtime.cudaDeviceSynchronize = call("synchronize")  # type: ignore[attr-defined]
    runtime.calls = calls  # type: ignore[attr-defined]
    return runtime


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    stand_in = runtime_stand_in()
    monkeypatch.setattr(cuda, "_runtime", lambda: stand_in)
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    return stand_in


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


@pytest.mark.parametrize(
    ("overrides", "arrays"),
    [
        (["data=pairs", "data.path=x.parquet"], False),
        (["data=pairs", "data.path=x.parquet", "method=case_shiller"], False),
        (["data=pairs", "data.path=x.parquet", "method=case_shiller", "method.stage2=absolute"], True),
        (["data=pairs", "data.path=x.parquet", "method=robust"], True),
        (["data=pairs", "data.path=x.parquet", "solver=lsqr"], True),
        (["data=pairs", "data.path=x.parquet", "diagnostics.accuracy_folds=5"], True),
        (["data=pairs", "data.path=x.parquet", "data.columns.price_prev=a", "data.columns.price_recent=b"], True),
        (["data=transactions", "data.path=x.parquet"], True),
        ([], True),  # the synthetic market: arrays made on the device
    ],
)
def test_the_warm_up_imports_cupy_only_for_runs_that_use_it(overrides: list[str], arrays: bool) -> None:
    assert uses_device_arrays(compose_config(*overrides)) == arrays


@pytest.mark.parametrize("arrays", [False, True])
def test_the_warm_up_creates_the_context_and_imports_what_the_run_uses(
    runtime: Any, monkeypatch: pytest.MonkeyPatch, arrays: bool
) -> None:
    from gpu_hpi.backend import warmup

    imported: list[str] = []
    monkeypatch.setattr(warmup, "_load", imported.append)
    monkeypatch.setenv("GPU_HPI_CUDF", "1")
    warmup._warm_up(arrays)
    assert runtime.calls == ["free"]  # the context, nothing allocated
    assert imported == (["pylibcudf", "cupy"] if arrays else ["pylibcudf"])


def test_the_warm_up_ends_quietly_without_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_hpi.backend import warmup

    imported: list[str] = []
    monkeypatch.setattr(cuda, "_runtime", lambda: runtime_stand_in(status=Status.cudaErrorNoDevice))
    monkeypatch.setattr(warmup, "_load", imported.append)
    warmup._warm_up(True)
    assert imported == []
