"""Dask worker plugins (imported where dask.distributed is installed)."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class CupyThroughRmm(WorkerPlugin):
    """CuPy's allocations through the worker's RMM memory resource. dask-cuda sets up each worker's
    RMM pool (or managed memory) for libcudf only; without this, the workers' CuPy arrays (the
    kernels, the solves) would be allocated beside the pool, not in it. Where CuPy or RMM does not
    import, nothing changes. Run again by a restarted worker."""

    name = "gpu_hpi-cupy-through-rmm"

    def setup(self, worker: Any) -> None:
        try:
            import cupy
            from rmm.allocators.cupy import rmm_cupy_allocator
        except ImportError:
            return
        cupy.cuda.set_allocator(rmm_cupy_allocator)
