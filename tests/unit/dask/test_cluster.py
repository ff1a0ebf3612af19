"""The Dask cluster of a run (dask/cluster.py): with cluster=cuda and an RMM pool, every worker routes
CuPy through it (dask/plugins.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from gpu_hpi.dask.cluster import cluster_client  # noqa: E402


def test_dask_cuda_workers_route_cupy_through_their_rmm_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cluster=cuda with an RMM pool (or managed memory): every worker runs the plugin that sets
    CuPy's allocator to RMM's (dask-cuda sets the pool up for cudf only). dask-cuda, CuPy and RMM
    are stood in for here: a LocalCluster, and modules that record the allocator set."""
    import sys
    import types

    from gpu_hpi.dask.plugins import CupyThroughRmm

    calls: list[Any] = []
    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(set_allocator=calls.append))
    allocator = object()
    rmm_cupy = types.ModuleType("rmm.allocators.cupy")
    rmm_cupy.rmm_cupy_allocator = allocator  # type: ignore[attr-defined]
    for name, module in {
        "cupy": cupy,
        "rmm": types.ModuleType("rmm"),
        "rmm.allocators": types.ModuleType("x"),
        "rmm.allocators.cupy": rmm_cupy,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    CupyThroughRmm().setup(worker=None)
    assert calls == [allocator]

    from distributed import LocalCluster

    made: list[dict[str, Any]] = []

    def local_cuda_cluster(n_workers: int, **kwargs: Any) -> Any:
        made.append(kwargs)
        return LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")

    monkeypatch.setitem(sys.modules, "dask_cuda", types.SimpleNamespace(LocalCUDACluster=local_cuda_cluster))
    config = SimpleNamespace(address=None, kind="cuda", n_workers=1)
    for memory, plugged in (
        (SimpleNamespace(pool=True, initial_pool_size="1GB", managed_memory=False), True),
        (SimpleNamespace(pool=True, initial_pool_size=None, managed_memory=False), False),  # no pool: CuPy's own
        (SimpleNamespace(pool=False, initial_pool_size=None, managed_memory=True), True),
    ):
        calls.clear()
        with cluster_client(config, memory) as client:  # type: ignore[arg-type]
            plugins = client.run(lambda dask_worker: list(dask_worker.plugins))
        assert all((CupyThroughRmm.name in names) == plugged for names in plugins.values())
        assert (calls == [allocator]) == plugged  # the in-process worker ran the stand-in cupy's setter
    assert made[0] == {"rmm_pool_size": "1GB"} and made[2] == {"rmm_managed_memory": True}
