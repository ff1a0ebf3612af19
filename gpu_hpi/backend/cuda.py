"""The CUDA device without CuPy: its count, name and memory, the context, a synchronize, and CuPy
itself imported on first use. A GPU run whose work is all libcudf's (a pair file reduced to its cell
table) never imports CuPy, 1.1 s of start-up on an H200 that held the interpreter beside the run's
own imports. The facts come from cuda-bindings (CUDA's runtime API for Python, installed with
pylibcudf and RMM), else from CuPy where only CuPy is installed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

_before_first_use: list[Callable[[ModuleType], None]] = []


def cupy_module() -> ModuleType:
    """CuPy, imported now if not yet, with the settings made for it (configure_memory's allocator)
    applied before it allocates anything."""
    cupy = importlib.import_module("cupy")
    while _before_first_use:
        _before_first_use.pop(0)(cupy)
    return cupy


def when_cupy_is_used(setting: Callable[[ModuleType], None]) -> None:
    """Apply `setting` to CuPy before its first use through cupy_module (now, if it is in use)."""
    if "cupy" in sys.modules:
        setting(cupy_module())
    else:
        _before_first_use.append(setting)


def _runtime() -> Any:
    """cuda-bindings' runtime module, or None where it is not installed."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return None
    return runtime


def _call(runtime: Any, name: str, *args: Any) -> tuple[Any, ...]:
    """A runtime call's results after its status; RuntimeError with CUDA's name for a failure."""
    status, *values = getattr(runtime, name)(*args)
    if status != runtime.cudaError_t.cudaSuccess:
        raise RuntimeError(f"{name}: {getattr(status, 'name', status)}")
    return tuple(values)


def device_count() -> int:
    """CUDA devices visible to this process (RuntimeError where the driver cannot be used)."""
    runtime = _runtime()
    if runtime is None:
        return int(cupy_module().cuda.runtime.getDeviceCount())
    return int(_call(runtime, "cudaGetDeviceCount")[0])


def device_name() -> str:
    """The current device's name, e.g. "NVIDIA H200" (a description only: "CUDA device" where it
    cannot be read)."""
    runtime = _runtime()
    try:
        if runtime is None:
            cupy = cupy_module()
            name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        else:
            name = _call(runtime, "cudaGetDeviceProperties", _call(runtime, "cudaGetDevice")[0])[0].name
    except Exception:
        return "CUDA device"
    text = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    return text.split("\0", 1)[0].strip()


def memory_info() -> tuple[int, int]:
    """(free, total) bytes of the current device."""
    runtime = _runtime()
    if runtime is None:
        free, total = cupy_module().cuda.Device().mem_info
    else:
        free, total = _call(runtime, "cudaMemGetInfo")
    return int(free), int(total)


def versions() -> dict[str, Any]:
    """The CUDA driver's and runtime's versions (e.g. 13000 for 13.0), None where not known."""
    runtime = _runtime()
    calls = {
        "cuda_driver": ("cudaDriverGetVersion", "driverGetVersion"),
        "cuda_runtime": ("cudaRuntimeGetVersion", "runtimeGetVersion"),
    }
    found: dict[str, Any] = {}
    for key, (bindings_call, cupy_call) in calls.items():
        try:
            if runtime is None:
                found[key] = int(getattr(cupy_module().cuda.runtime, cupy_call)())
            else:
                found[key] = int(_call(runtime, bindings_call)[0])
        except Exception:  # a record only: never fails a run
            found[key] = None
    return found


def create_context() -> None:
    """The CUDA context of the current device, created now (the driver's work, 0.6 s on an H200,
    done without the interpreter's lock); nothing allocated."""
    runtime = _runtime()
    if runtime is None:
        cupy_module().cuda.runtime.free(0)
    else:
        _call(runtime, "cudaFree", 0)


def synchronize() -> None:
    """Wait for the device's queued work: CuPy's, where it is in use, and libcudf's."""
    if "cupy" in sys.modules:
        sys.modules["cupy"].cuda.Device().synchronize()
        return
    runtime = _runtime()
    if runtime is not None:
        _call(runtime, "cudaDeviceSynchronize")
