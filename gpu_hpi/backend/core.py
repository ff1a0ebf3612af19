"""The compute backend, resolved once: the array namespace (numpy or cupy) and its sparse modules.

Everything numerical takes a `Backend` and uses `backend.xp` / `backend.sparse`, so one code path
serves numpy/scipy on the CPU and CuPy/cupyx on the GPU; `to_host` / `asarray` are the one way
across the boundary.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from ..options import BackendName, option_values
from . import cuda

DEVICE_PACKAGES = ("cupy", "pylibcudf", "rmm")
GPU_EXTRA_HINT = "install the GPU extra: pip install 'gpu_hpi[gpu]' (CUDA 12) or 'gpu_hpi[gpu-cu13]'"


@dataclass(frozen=True)
class Backend:
    """A resolved backend.

    name: "cpu" or "gpu"; xp: numpy or cupy (CuPy imported on first use: a run whose device work
    is all libcudf's never imports it); sparse / sparse_linalg: scipy.sparse(.linalg) or
    cupyx.scipy.sparse(.linalg), imported when first used (only the sparse solvers use them); device:
    a human-readable description of where the work runs.
    """

    name: Literal["cpu", "gpu"]
    xp_module: ModuleType | str  # a module, or "cupy": imported on first use (1.1 s)
    sparse_module: ModuleType | str  # a module, or its name: imported on first use (0.5 s for SciPy's)
    sparse_linalg_module: ModuleType | str
    device: str

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    @property
    def xp(self) -> ModuleType:
        if self.xp_module == "cupy":
            return cuda.cupy_module()  # with the memory settings made for it
        return _module(self.xp_module)

    @property
    def sparse(self) -> ModuleType:
        return _module(self.sparse_module)

    @property
    def sparse_linalg(self) -> ModuleType:
        return _module(self.sparse_linalg_module)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Move an array (host or device) into this backend's namespace. Large host arrays reach the
        GPU through page-locked (pinned) memory: on the H200 host pageable copies ran at 0.7 GB/s,
        pinned ones at 54 GB/s, so a memcpy into a pooled pinned buffer first is far cheaper."""
        if self.is_gpu and isinstance(a, np.ndarray) and a.nbytes >= PINNED_MIN_BYTES:
            return _through_pinned(self.xp, a if dtype is None else a.astype(dtype, copy=False))
        return self.xp.asarray(a, dtype=dtype)

    def workers(self, n_items: int, threads: int | None = None) -> int:
        """Threads to share n_items among: one on the GPU (the device does the parallel work), else
        `threads` or a thread per usable core, at most one per item."""
        return 1 if self.is_gpu else max(1, min(threads or usable_cores(), n_items))

    def to_host(self, a: Any) -> np.ndarray:
        """A numpy copy (or view, on the CPU) of an array of this backend."""
        return to_host(a)

    def versions(self) -> dict[str, Any]:
        """The device software's versions for the run record: on a GPU CuPy's, pylibcudf's and RMM's
        (where the run imported them) and the CUDA driver's and runtime's; on the CPU none."""
        if not self.is_gpu:
            return {}
        found: dict[str, Any] = {
            name: getattr(sys.modules[name], "__version__", None) for name in DEVICE_PACKAGES if name in sys.modules
        }
        return found | cuda.versions()

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timings); a no-op on the CPU."""
        if self.is_gpu:
            cuda.synchronize()


PINNED_MIN_BYTES = 1 << 20


def _through_pinned(cupy: Any, a: np.ndarray) -> Any:
    import cupyx

    staging = cupyx.empty_pinned(a.shape, a.dtype)  # from CuPy's pinned memory pool: reused
    np.copyto(staging, a)
    # from a pinned source CuPy copies asynchronously and keeps `staging` alive until the copy's
    # event completes (ndarray.set would not: the pool could hand the buffer out mid-copy)
    return cupy.asarray(staging)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's share, not
    every core of the host), the thread count of the CPU paths."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _module(module: ModuleType | str) -> ModuleType:
    return importlib.import_module(module) if isinstance(module, str) else module


def _cpu_backend() -> Backend:
    cpu = platform.processor() or platform.machine()
    return Backend("cpu", np, "scipy.sparse", "scipy.sparse.linalg", f"CPU {cpu} ({usable_cores()} cores)")


def _gpu_backend() -> Backend:
    """The CuPy backend, or a BackendUnavailableError saying why it cannot run here. CuPy is found,
    not imported: the device is asked through CUDA's runtime (backend/cuda.py)."""
    if importlib.util.find_spec("cupy") is None:
        raise BackendUnavailableError(f"backend=gpu needs CuPy, which is not installed; {GPU_EXTRA_HINT}")
    try:
        n_devices = cuda.device_count()
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import or call
        raise BackendUnavailableError(f"backend=gpu: no usable CUDA device ({exc}); {GPU_EXTRA_HINT}") from exc
    if n_devices == 0:
        raise BackendUnavailableError("backend=gpu: this machine has no CUDA device")
    return Backend("gpu", "cupy", "cupyx.scipy.sparse", "cupyx.scipy.sparse.linalg", f"GPU {cuda.device_name()}")


@functools.cache
def resolve_backend(choice: str = "auto") -> Backend:
    """Map `cpu` / `gpu` / `auto` to a Backend; `auto` takes the GPU when it can run, else the CPU."""
    if choice not in option_values(BackendName):
        raise ConfigError(f"backend must be one of {option_values(BackendName)}, got {choice!r}")
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


def to_host(a: Any) -> np.ndarray:
    """A numpy array of a numpy or CuPy array: the array itself on the host, a copy from the device.
    The one way back across the boundary (`Backend.to_host` is this)."""
    if isinstance(a, np.ndarray) or array_namespace(a) is np:
        return np.asarray(a)
    return a.get()


def array_namespace(a: Any) -> ModuleType:
    """numpy for numpy arrays, cupy for cupy arrays (without importing CuPy for numpy input)."""
    if isinstance(a, np.ndarray) or type(a).__module__.split(".")[0] != "cupy":
        return np
    return cuda.cupy_module()
