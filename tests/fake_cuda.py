"""A stand-in of cuda-bindings' runtime module (`cuda.bindings.runtime`), as gpu_hpi.backend.cuda uses
it: each call returns the status first, then its values; the calls made are recorded in `calls`. The
device is an H200 with 140 of 141 bytes free."""

from __future__ import annotations

import enum
import types
from typing import Any


class Status(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorNoDevice = 100


def runtime_stand_in(count: int = 1, status: Status = Status.cudaSuccess) -> types.ModuleType:
    """The runtime module of `count` devices whose every call returns `status`."""
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
