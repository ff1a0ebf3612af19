"""Device memory: RMM's pool (sizes in bytes, '40GB' or a fraction of the device), the share of it a
read may take, and the peak the run used."""

from __future__ import annotations

from types import ModuleType

from ..errors import ConfigError
from . import cuda
from .core import GPU_EXTRA_HINT, Backend

# a device read's decoded columns take at most this share of the device's memory
DEVICE_READ_SHARE = 1 / 8


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
    return read_budget(cuda.memory_info()[1], maximum_pool_size)


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
    """Set up RMM's pool (or managed memory) before any device allocation, libcudf's and, once it is
    in use, CuPy's, with statistics on so the peak can be reported. Returns a one-line note of what
    was done ("" on the CPU)."""
    if not backend.is_gpu:
        return ""  # the memory settings are the GPU's: nothing to say on the CPU
    if not (pool or managed_memory):
        return "RMM off: CuPy's default memory pool"
    try:
        import rmm
        import rmm.statistics
    except ImportError:
        return f"RMM is not installed, CuPy's default memory pool is used ({GPU_EXTRA_HINT})"
    if not isinstance(rmm.mr.get_current_device_resource(), rmm.mr.CudaMemoryResource):
        note = "an RMM memory resource was already set: respected"
    else:
        free, total = cuda.memory_info()
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
    cuda.when_cupy_is_used(_rmm_for_cupy)  # CuPy's allocations from the same pool as libcudf's
    return note


def _rmm_for_cupy(cupy: ModuleType) -> None:
    from rmm.allocators.cupy import rmm_cupy_allocator  # imports CuPy: only once it is in use

    cupy.cuda.set_allocator(rmm_cupy_allocator)


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
