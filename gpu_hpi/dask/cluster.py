"""The Dask cluster of a run: a local one (CPU workers or one per GPU) or an existing scheduler,
closed when the run ends."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from ..config import ClusterConfig, MemoryConfig, option_name
from ..errors import ConfigError

DASK_EXTRA_HINT = "install the dask extra: pip install 'gpu_hpi[dask]'"


@contextlib.contextmanager
def cluster_client(cluster: ClusterConfig, memory: MemoryConfig) -> Iterator[Any]:
    """A dask.distributed Client for the `cluster` config: a running scheduler (cluster.address),
    a LocalCluster (kind=local) or dask-cuda's LocalCUDACluster (kind=cuda: an RMM pool per worker
    of memory.initial_pool_size, or managed memory, which the workers' CuPy arrays use too; with
    neither, dask-cuda's defaults and CuPy's own pool)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        kind = option_name(cluster.kind)
        raise ConfigError(f"cluster={kind} needs dask.distributed ({exc}); {DASK_EXTRA_HINT}") from exc
    logging.getLogger("distributed").setLevel(logging.WARNING)  # not the scheduler's INFO chatter
    if cluster.address:
        with Client(cluster.address) as client:
            yield client
        return
    if cluster.kind == "cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise ConfigError(f"cluster=cuda needs dask-cuda ({exc}); install the GPU and dask extras") from exc
        kwargs: dict[str, Any] = {"rmm_pool_size": memory.initial_pool_size} if memory.pool else {}
        if memory.managed_memory:
            kwargs["rmm_managed_memory"] = True
        local = LocalCUDACluster(n_workers=cluster.n_workers, **kwargs)
        if kwargs.get("rmm_pool_size") or memory.managed_memory:  # CuPy's arrays in that pool too
            from .plugins import CupyThroughRmm

            with local, Client(local) as client:
                client.register_plugin(CupyThroughRmm())
                yield client
            return
    else:
        local = LocalCluster(
            n_workers=cluster.n_workers,
            threads_per_worker=cluster.threads_per_worker,
            processes=True,
            memory_limit=cluster.memory_limit,
            dashboard_address=":0",  # any free port: never collide with another cluster's dashboard
        )
    with local, Client(local) as client:
        yield client
