"""Resolve the compute backend once: the array namespace (numpy or cupy) and its sparse modules.

Everything numerical takes a `Backend` and uses `backend.xp` / `backend.sparse`, so one code path
serves numpy/scipy on the CPU and CuPy/cupyx on the GPU.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, get_args

import numpy as np

from .errors import BackendUnavailableError, ConfigError

BackendChoice = Literal["auto", "cpu", "gpu"]
GPU_EXTRA_HINT = "install the GPU extra: pip install 'gpu_hpi[gpu]' (CUDA 12) or 'gpu_hpi[gpu-cu13]'"


@dataclass(frozen=True)
class Backend:
    """A resolved backend.

    name: "cpu" or "gpu"; xp: numpy or cupy; sparse / sparse_linalg: scipy.sparse(.linalg) or
    cupyx.scipy.sparse(.linalg); device: a human-readable description of where the work runs.
    """

    name: Literal["cpu", "gpu"]
    xp: ModuleType
    sparse: ModuleType
    sparse_linalg: ModuleType
    device: str

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Move an array (host or device) into this backend's namespace. Large host arrays reach the
        GPU through page-locked (pinned) memory: on the H200 host pageable copies ran at 0.7 GB/s,
        pinned ones at 54 GB/s, so a memcpy into a pooled pinned buffer first is far cheaper."""
        if self.is_gpu and isinstance(a, np.ndarray) and a.nbytes >= PINNED_MIN_BYTES:
            return _through_pinned(self.xp, a if dtype is None else a.astype(dtype, copy=False))
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> np.ndarray:
        """A numpy copy (or view, on the CPU) of an array of this backend."""
        if self.is_gpu and not isinstance(a, np.ndarray):
            return a.get()
        return np.asarray(a)

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timings); a no-op on the CPU."""
        if self.is_gpu:
            self.xp.cuda.Device().synchronize()


PINNED_MIN_BYTES = 1 << 20
# a device read's decoded columns take at most this share of the device's memory
DEVICE_READ_SHARE = 1 / 8


def _through_pinned(cupy: Any, a: np.ndarray) -> Any:
    import cupyx

    staging = cupyx.empty_pinned(a.shape, a.dtype)  # from CuPy's pinned memory pool: reused
    np.copyto(staging, a)
    # from a pinned source CuPy copies asynchronously and keeps `staging` alive until the copy's
    # event completes (ndarray.set would not: the pool could hand the buffer out mid-copy)
    return cupy.asarray(staging)


def read_budget(total_bytes: int, maximum_pool_size: str | None = None) -> int:
    """Bytes of decoded columns one device read may produce: DEVICE_READ_SHARE of the device's
    memory, and at most a quarter of memory.maximum_pool_size where one is set (the read, the
    arrays derived from it and the reader's scratch must fit in the pool together)."""
    budget = int(total_bytes * DEVICE_READ_SHARE)
    if maximum_pool_size is not None:
        budget = min(budget, parse_size(maximum_pool_size, total_bytes) // 4)
    return max(budget, 1)


def device_read_budget(backend: Backend, maximum_pool_size: str | None = None) -> int:
    """read_budget of this backend's device (GPU only)."""
    return read_budget(int(backend.xp.cuda.Device().mem_info[1]), maximum_pool_size)


def _cpu_backend() -> Backend:
    import scipy.sparse
    import scipy.sparse.linalg

    cpu = platform.processor() or platform.machine()
    return Backend("cpu", np, scipy.sparse, scipy.sparse.linalg, f"CPU {cpu} ({os.cpu_count()} cores)")


def _gpu_backend() -> Backend:
    """The CuPy backend, or a BackendUnavailableError saying why it cannot run here."""
    try:
        import cupy
        import cupyx.scipy.sparse
        import cupyx.scipy.sparse.linalg
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        raise BackendUnavailableError(
            f"backend=gpu needs CuPy, which cannot be imported ({exc}); {GPU_EXTRA_HINT}"
        ) from exc
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise BackendUnavailableError(f"backend=gpu: CuPy imports but finds no usable CUDA device ({exc})") from exc
    if n_devices == 0:
        raise BackendUnavailableError("backend=gpu: CuPy imports but this machine has no CUDA device")
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return Backend("gpu", cupy, cupyx.scipy.sparse, cupyx.scipy.sparse.linalg, f"GPU {name}")


@functools.cache
def resolve_backend(choice: str = "auto") -> Backend:
    """Map `cpu` / `gpu` / `auto` to a Backend; `auto` takes the GPU when it can run, else the CPU."""
    if choice not in get_args(BackendChoice):
        raise ConfigError(f"backend must be one of {list(get_args(BackendChoice))}, got {choice!r}")
    if choice == "cpu":
        return _cpu_backend()
    if choice == "gpu":
        return _gpu_backend()
    try:
        return _gpu_backend()
    except BackendUnavailableError:
        return _cpu_backend()


def as_backend(backend: Backend | str) -> Backend:
    return backend if isinstance(backend, Backend) else resolve_backend(backend)


def array_namespace(a: Any) -> ModuleType:
    """numpy for numpy arrays, cupy for cupy arrays (without importing CuPy for numpy input)."""
    if isinstance(a, np.ndarray) or type(a).__module__.split(".")[0] != "cupy":
        return np
    import cupy

    return cupy


_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str | int | float, total: int) -> int:
    """'40GB' / '40GiB' / '1000000' bytes, or a fraction of `total` such as '0.8' -> bytes,
    rounded down to a multiple of 256 (RMM's pool granularity)."""
    value = str(text).strip().lower().replace(" ", "")
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = value[len(number) :]
    try:
        amount = float(number)
    except ValueError as exc:
        raise ConfigError(
            f"cannot read memory size {text!r} (use bytes, '40GB', '16GiB' or a fraction like '0.8')"
        ) from exc
    if unit:
        if unit not in _SIZE_UNITS:
            raise ConfigError(f"unknown unit in memory size {text!r}; use one of {sorted(_SIZE_UNITS)}")
        size = amount * _SIZE_UNITS[unit]
    elif 0 < amount <= 1 and "." in number:
        size = amount * total
    else:
        size = amount
    rounded = int(size) // 256 * 256
    if rounded <= 0:
        raise ConfigError(f"memory size {text!r} must be at least 256 bytes")
    return rounded


def check_memory_sizes(initial: str | None, maximum: str | None) -> None:
    """ConfigError unless the pool sizes read as sizes (on any backend, before any work) and an
    initial size given in bytes is not above a maximum given in bytes (fractions are checked
    against the device in configure_memory)."""
    sizes = {}
    for name, text in (("initial_pool_size", initial), ("maximum_pool_size", maximum)):
        if text is not None:
            try:
                sizes[name] = parse_size(text, 1 << 40)
            except ConfigError as exc:
                raise ConfigError(f"memory.{name}: {exc}") from exc
    absolute = [text for text in (initial, maximum) if text is not None and not _is_fraction(text)]
    if len(absolute) == 2 and sizes["initial_pool_size"] > sizes["maximum_pool_size"]:
        raise ConfigError(f"memory.initial_pool_size={initial} exceeds memory.maximum_pool_size={maximum}")


def _is_fraction(text: str | int | float) -> bool:
    value = str(text).strip()
    return "." in value and value.replace(".", "", 1).isdigit() and 0 < float(value) <= 1


def configure_memory(
    backend: Backend, *, pool: bool, initial_pool_size: str | None, maximum_pool_size: str | None, managed_memory: bool
) -> str:
    """Route CuPy through an RMM pool (or managed memory) before any device allocation, with
    statistics on so the peak can be reported. Returns a one-line note of what was done."""
    if not backend.is_gpu:
        return "memory settings apply to the GPU only; ignored on the CPU"
    if not (pool or managed_memory):
        return "RMM off: CuPy's default memory pool"
    try:
        import rmm
        import rmm.statistics
        from rmm.allocators.cupy import rmm_cupy_allocator
    except ImportError:
        return f"RMM is not installed, CuPy's default memory pool is used ({GPU_EXTRA_HINT})"
    if not isinstance(rmm.mr.get_current_device_resource(), rmm.mr.CudaMemoryResource):
        note = "an RMM memory resource was already set: respected"
    else:
        free, total = (int(v) for v in backend.xp.cuda.Device().mem_info)
        initial = None if initial_pool_size is None else parse_size(initial_pool_size, total)
        maximum = None if maximum_pool_size is None else parse_size(maximum_pool_size, total)
        clamped = ""
        if maximum is not None and initial is None:  # RMM's default initial pool must fit the maximum
            initial = min(free // 2 // 256 * 256, maximum)
        elif maximum is not None and initial is not None and initial > maximum:
            clamped = f"; initial pool clamped to the maximum {maximum_pool_size}"
            initial = maximum
        rmm.reinitialize(
            pool_allocator=pool, managed_memory=managed_memory, initial_pool_size=initial, maximum_pool_size=maximum
        )
        note = f"RMM {'pool' if pool else 'allocator'}{' on managed memory' if managed_memory else ''}{clamped}"
    rmm.statistics.enable_statistics()
    backend.xp.cuda.set_allocator(rmm_cupy_allocator)
    return note


def peak_device_bytes(backend: Backend) -> int | None:
    """Peak device bytes: RMM's statistics when CuPy runs through RMM, else the size CuPy's pool
    reached (an upper bound). None on the CPU."""
    if not backend.is_gpu:
        return None
    try:
        import rmm.statistics

        stats = rmm.statistics.get_statistics()
        if stats is not None:
            return int(stats.peak_bytes)
    except ImportError:
        pass
    return int(backend.xp.get_default_memory_pool().total_bytes())
