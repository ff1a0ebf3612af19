"""The Dask cluster of a run: a local one (CPU workers or one per GPU) or a running scheduler
(cluster.address: tcp://, or tls:// with the CA, certificate and key files, encryption required),
closed when the run ends.

A stop (Ctrl-C, SIGTERM) closes it without a word from Dask: a terminal's Ctrl-C reaches every
process of the foreground group, so the local workers are started with SIGINT blocked (this
process closes them), and Dask's loggers are silent while a stopped run's cluster closes (tasks
cancelled, workers ended mid-task: the stop's own consequences)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import threading
from collections.abc import Iterator
from typing import Any

from ..config import ClusterConfig, MemoryConfig, option_name
from ..errors import ConfigError, Stopped

DASK_EXTRA_HINT = "install the dask extra: pip install 'gpu_hpi[dask]'"
TLS_FILES = ("tls_ca_file", "tls_cert", "tls_key")  # the options, in the order the messages name them
QUIET_LOGGERS = ("distributed", "tornado", "asyncio")  # what a cluster closed mid-task says


@contextlib.contextmanager
def cluster_client(cluster: ClusterConfig, memory: MemoryConfig) -> Iterator[Any]:
    """A dask.distributed Client for the `cluster` config: a running scheduler (cluster.address,
    answering within cluster.timeout), a LocalCluster (kind=local) or dask-cuda's LocalCUDACluster
    (kind=cuda: an RMM pool per worker of memory.initial_pool_size, or managed memory, which the
    workers' CuPy arrays use too; with neither, dask-cuda's defaults and CuPy's own pool). A bad
    address, timeout or TLS file is a ConfigError before anything connects."""
    try:
        import distributed  # noqa: F401 (here: a missing extra is a one-line refusal)
    except ImportError as exc:
        kind = option_name(cluster.kind)
        raise ConfigError(f"cluster={kind} needs dask.distributed ({exc}); {DASK_EXTRA_HINT}") from exc
    logging.getLogger("distributed").setLevel(logging.WARNING)  # not the scheduler's INFO chatter
    with contextlib.ExitStack() as stack:
        levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        stack.callback(_set_levels, levels)  # last on the way out: once the cluster is closed
        client = None
        try:
            client = _client(stack, cluster, memory)
            yield client
        except (KeyboardInterrupt, Stopped):  # silent while the stack closes the cluster
            _quiet()
            if client is not None and not cluster.address:  # this run's own workers too
                with contextlib.suppress(Exception):
                    client.run(_quiet)
            raise


def _client(stack: contextlib.ExitStack, cluster: ClusterConfig, memory: MemoryConfig) -> Any:
    """The client of cluster_client, what it connects to entered into `stack`."""
    from distributed import Client, LocalCluster

    if cluster.address:
        return stack.enter_context(connect(cluster))
    check_workers(cluster)
    if cluster.kind == "cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise ConfigError(f"cluster=cuda needs dask-cuda ({exc}); install the GPU and dask extras") from exc
        kwargs: dict[str, Any] = {"rmm_pool_size": memory.initial_pool_size} if memory.pool else {}
        if memory.managed_memory:
            kwargs["rmm_managed_memory"] = True
        with _signals_held():
            local = stack.enter_context(LocalCUDACluster(n_workers=cluster.n_workers, **kwargs))
        client = stack.enter_context(Client(local))
        if kwargs.get("rmm_pool_size") or memory.managed_memory:  # CuPy's arrays in that pool too
            from .plugins import CupyThroughRmm

            client.register_plugin(CupyThroughRmm())
        return client
    with _signals_held():
        local = stack.enter_context(
            LocalCluster(
                n_workers=cluster.n_workers,
                threads_per_worker=cluster.threads_per_worker,
                processes=True,
                memory_limit=cluster.memory_limit,
                dashboard_address=":0",  # any free port: never collide with another cluster's dashboard
            )
        )
    return stack.enter_context(Client(local))


# below this a worker pauses at once (Dask's memory thresholds) and the run waits for ever
MIN_WORKER_MEMORY = 1 << 28


def check_workers(cluster: ClusterConfig) -> None:
    """ConfigError for local workers that cannot work: none (the run waited for ever), threads
    below 1, or a memory limit that does not read or leaves a worker less than 256 MiB (Dask's
    tracebacks, or workers paused for ever)."""
    from distributed.worker_memory import parse_memory_limit

    if cluster.n_workers is not None and cluster.n_workers < 1:
        raise ConfigError(f"cluster.n_workers must be at least 1 (or null: Dask's default), got {cluster.n_workers}")
    if cluster.kind == "cuda":  # one worker a GPU: its threads and memory are dask-cuda's
        return
    if cluster.threads_per_worker < 1:
        raise ConfigError(f"cluster.threads_per_worker must be at least 1, got {cluster.threads_per_worker}")
    try:
        limit = parse_memory_limit(cluster.memory_limit, cluster.threads_per_worker, logger=logging.getLogger(__name__))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cluster.memory_limit={cluster.memory_limit!r}: {_first_line(exc)}") from exc
    if limit is not None and limit < MIN_WORKER_MEMORY:
        raise ConfigError(
            f"cluster.memory_limit={cluster.memory_limit!r} leaves a worker {limit:,} bytes; give at least 256MiB "
            "(or auto, or 0: no limit)"
        )


def connect(cluster: ClusterConfig) -> Any:
    """A client of the scheduler at cluster.address; ConfigError for an address that does not read,
    TLS files that are missing or unreadable (before connecting), or no answer within
    cluster.timeout seconds."""
    from distributed import Client

    address = str(cluster.address)
    timeout = float(cluster.timeout)
    if not timeout > 0:
        raise ConfigError(f"cluster.timeout must be a positive number of seconds, got {cluster.timeout}")
    security = scheduler_security(cluster)
    try:
        _handshake(address, security.get_connection_args("client") if security else {}, timeout)
        return Client(address, timeout=timeout, security=security)
    except ValueError as exc:  # distributed's parse of the address
        raise ConfigError(f"cluster.address={address}: {_first_line(exc)}") from exc
    except OSError as exc:  # refused connections and timeouts are retried until cluster.timeout
        rejected = _rejection(exc)
        if rejected is not None:  # something answered, and refused this client (TLS, or TLS expected)
            raise ConfigError(
                f"cannot connect to the Dask scheduler at {address}: {_first_line(rejected)}; check the address "
                "(tls:// for a scheduler that requires TLS) and the TLS files"
            ) from exc
        raise ConfigError(
            f"no Dask scheduler answered at {address} within cluster.timeout={timeout:g} s; check the address "
            "and that the scheduler runs, or raise cluster.timeout"
        ) from exc


def _rejection(exc: BaseException) -> BaseException | None:
    """The TLS error or reset connection behind a failed connection (distributed wraps it), if any."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        if isinstance(seen, ssl.SSLError | ConnectionResetError):
            return seen
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _handshake(address: str, connection_args: dict[str, Any], timeout: float) -> None:
    """Wait at most `timeout` seconds for the scheduler at `address` to answer Dask's handshake;
    OSError (or ValueError for an address that does not read) otherwise. distributed retries the
    connection until its timeout but then waits for the handshake without one: a port that accepts
    and says nothing held the run forever. In a thread of its own, with its own event loop, so that
    none of the caller's is in the way."""
    from distributed.comm import connect as open_comm

    async def shake() -> None:
        comm = await asyncio.wait_for(open_comm(address, timeout=timeout, **connection_args), timeout)
        await comm.close()

    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(shake())
        except BaseException as exc:  # raised again in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="gpu_hpi scheduler handshake", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def scheduler_security(cluster: ClusterConfig) -> Any:
    """distributed's Security for cluster.address: None for a plain address; for tls://, the CA,
    this client's certificate and key (every file given and readable, loaded here), encryption
    required. TLS files with an address that is not tls:// are refused too: they would be
    ignored, and the connection unencrypted."""
    address = str(cluster.address)
    given = {name: str(getattr(cluster, name)) for name in TLS_FILES if getattr(cluster, name)}
    if not address.startswith("tls://"):
        if given:
            options = ", ".join(f"cluster.{name}" for name in given)
            raise ConfigError(
                f"{options} given, but cluster.address={address} is not tls://: the connection would not be "
                "encrypted; use tls://HOST:PORT"
            )
        return None
    missing = [f"cluster.{name}" for name in TLS_FILES if name not in given]
    if missing:
        raise ConfigError(
            f"cluster.address={address} needs the PEM files cluster.tls_ca_file, cluster.tls_cert and "
            f"cluster.tls_key (missing: {', '.join(missing)})"
        )
    paths = {name: os.path.expanduser(path) for name, path in given.items()}
    for name, path in paths.items():
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            raise ConfigError(f"cannot read cluster.{name}={given[name]}: {exc.strerror}") from exc
    from distributed.security import Security

    security = Security(
        tls_ca_file=paths["tls_ca_file"],
        tls_client_cert=paths["tls_cert"],
        tls_client_key=paths["tls_key"],
        require_encryption=True,
    )
    try:
        security.get_connection_args("client")  # the TLS context, from the files: a bad one fails now
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"cluster.tls_ca_file, cluster.tls_cert and cluster.tls_key do not form a TLS identity "
            f"(a PEM CA certificate, a certificate and its private key): {_first_line(exc)}"
        ) from exc
    return security


def _quiet() -> None:
    """Dask's loggers (and tornado's and asyncio's under them) above CRITICAL, in this process or,
    run by the client, in a worker's."""
    _set_levels(dict.fromkeys(QUIET_LOGGERS, logging.CRITICAL + 1))


def _set_levels(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """While a local cluster starts: its worker processes are born with SIGINT blocked (a signal
    mask passes from thread to thread and through the workers' spawn; a terminal's Ctrl-C would
    otherwise end each with a traceback), and a SIGINT / SIGTERM this process receives meanwhile is
    held, then raised once the cluster stands, where the caller closes it."""
    if threading.current_thread() is not threading.main_thread():  # signals are handled there only
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # now: starting it unblocks SIGINT in the thread that does
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        held.append(signum)

    stops = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not None]  # None: not Python's
    handlers = {sig: signal.signal(sig, hold) for sig in stops}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if held:
            signal.raise_signal(held[0])  # the run's own handler, as if it came now


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
