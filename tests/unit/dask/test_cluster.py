"""The Dask cluster of a run (dask/cluster.py): with cluster=cuda and an RMM pool, every worker routes
CuPy through it (dask/plugins.py); a remote scheduler answers within cluster.timeout or is refused
in one line; a tls:// one with the run's certificate gives the single-process index, and its
files are checked before connecting; a stop while a local cluster starts is held. A stop under a
running cluster: tests/e2e/test_stops.py."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import run_app, write_dataset

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


# a remote scheduler: its timeout, TLS, and what a cluster does on a stop


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a certificate it signed, with its key, made by openssl for the test (PEM files)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=gpu_hpi test CA"],
        ["req", *ec, "-keyout", "key.pem", "-out", "cert.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem"],
    ):
        subprocess.run(["openssl", *command], cwd=folder, check=True, capture_output=True)
    return {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}


@pytest.fixture(scope="module")
def tls_scheduler(tls_files: dict[str, Path]) -> Any:
    """The address of a running cluster that speaks TLS only (its workers in this process)."""
    from distributed import LocalCluster
    from distributed.security import Security

    ca, cert, key = (str(tls_files[k]) for k in ("ca", "cert", "key"))
    security = Security(
        tls_ca_file=ca,
        **{
            f"tls_{role}_{part}": path
            for role in ("scheduler", "worker", "client")
            for part, path in (("cert", cert), ("key", key))
        },
        require_encryption=True,
    )
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tls", security=security, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


def tls_options(files: dict[str, Path]) -> list[str]:
    return [
        f"cluster.tls_ca_file={files['ca']}",
        f"cluster.tls_cert={files['cert']}",
        f"cluster.tls_key={files['key']}",
    ]


def test_a_tls_scheduler_gives_the_single_process_index(
    tmp_path: Path, tls_files: dict[str, Path], tls_scheduler: str
) -> None:
    write_dataset(tmp_path / "ds", n=20_000, parts=2)
    common = ["data=pairs", f"data.path={tmp_path / 'ds'}", "data.batch_rows=5000", "diagnostics.revision=false"]
    single = run_app(tmp_path, *common, name="single").ok()
    assert tls_scheduler.startswith("tls://")
    tls = run_app(tmp_path, *common, f"cluster.address={tls_scheduler}", *tls_options(tls_files), name="tls").ok()
    a, b = single.frame, tls.frame
    pd.testing.assert_frame_equal(a[["group", "period", "n_pairs"]], b[["group", "period", "n_pairs"]])
    np.testing.assert_allclose(a["log_index"], b["log_index"], atol=1e-10, rtol=0)
    np.testing.assert_allclose(a["se"], b["se"], rtol=1e-10)
    assert tls.summary["dask_workers"] == 2 and tls.summary["dropped"] == single.summary["dropped"]
    # the same scheduler without TLS (it requires encryption), or with a CA that did not sign its
    # certificate: refused in one line
    plain = tls_scheduler.replace("tls://", "tcp://")
    run = run_app(tmp_path, *common, f"cluster.address={plain}", "cluster.timeout=5", name="plain")
    run.assert_failed(f"cannot connect to the Dask scheduler at {plain}: ", "Connection reset by peer", "tls://")
    other_ca = [f"cluster.tls_ca_file={tls_files['cert']}", f"cluster.tls_cert={tls_files['cert']}"]
    run = run_app(
        tmp_path, *common, f"cluster.address={tls_scheduler}", *other_ca, f"cluster.tls_key={tls_files['key']}"
    )
    run.assert_failed(f"cannot connect to the Dask scheduler at {tls_scheduler}: ", "CERTIFICATE_VERIFY_FAILED")


def test_tls_files_are_checked_before_connecting(tmp_path: Path, tls_files: dict[str, Path]) -> None:
    """Every case refused in one line before a connection is tried: the address is one where
    nothing listens, which would end in a timeout instead."""
    write_dataset(tmp_path / "ds", n=3_000, parts=1)
    nowhere = "tls://127.0.0.1:1"
    ca, cert, key = tls_files["ca"], tls_files["cert"], tls_files["key"]
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    cases = [
        (
            [f"cluster.address={nowhere}"],
            f"cluster.address={nowhere} needs the PEM files cluster.tls_ca_file, "
            "cluster.tls_cert and cluster.tls_key (missing: cluster.tls_ca_file, cluster.tls_cert, cluster.tls_key)",
        ),
        (
            [f"cluster.address={nowhere}", f"cluster.tls_ca_file={ca}", f"cluster.tls_cert={cert}"],
            "(missing: cluster.tls_key)",
        ),
        (
            [
                f"cluster.address={nowhere}",
                f"cluster.tls_ca_file={ca}",
                f"cluster.tls_cert={cert}",
                f"cluster.tls_key={tmp_path / 'gone.pem'}",
            ],
            f"cannot read cluster.tls_key={tmp_path / 'gone.pem'}: No such file or directory",
        ),
        (
            [
                f"cluster.address={nowhere}",
                f"cluster.tls_ca_file={tmp_path}",
                f"cluster.tls_cert={cert}",
                f"cluster.tls_key={key}",
            ],
            f"cannot read cluster.tls_ca_file={tmp_path}: Is a directory",
        ),
        (
            [
                f"cluster.address={nowhere}",
                f"cluster.tls_ca_file={not_pem}",
                f"cluster.tls_cert={cert}",
                f"cluster.tls_key={key}",
            ],
            "do not form a TLS identity",
        ),
        (
            [
                f"cluster.address={nowhere}",
                f"cluster.tls_ca_file={ca}",
                f"cluster.tls_cert={cert}",
                f"cluster.tls_key={ca}",
            ],
            "do not form a TLS identity",
        ),
        (  # a key, but not the certificate's
            [
                f"cluster.address={nowhere}",
                f"cluster.tls_ca_file={ca}",
                f"cluster.tls_cert={cert}",
                f"cluster.tls_key={ca.with_suffix('.key')}",
            ],
            "do not form a TLS identity",
        ),
        (
            ["cluster.address=tcp://127.0.0.1:1", f"cluster.tls_cert={cert}"],
            "cluster.tls_cert given, but cluster.address=tcp://127.0.0.1:1 is not tls://: the connection would not "
            "be encrypted; use tls://HOST:PORT",
        ),
    ]
    for k, (overrides, message) in enumerate(cases):
        started = time.monotonic()
        run = run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'ds'}", *overrides, name=f"r{k}")
        run.assert_failed(message)
        assert time.monotonic() - started < 5  # no connection was tried (it would wait 10 s)


def test_a_scheduler_that_does_not_answer_is_one_line_within_the_timeout(tmp_path: Path) -> None:
    """A port where nothing listens, and one that accepts and says nothing (distributed itself waits
    for its handshake forever): one line once cluster.timeout has passed. A bad timeout or address
    is refused at once."""
    write_dataset(tmp_path / "ds", n=3_000, parts=1)
    common = ["data=pairs", f"data.path={tmp_path / 'ds'}", "cluster.timeout=0.2"]
    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
        for k, sock in enumerate((closed, silent)):
            address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
            started = time.monotonic()
            run = run_app(tmp_path, *common, f"cluster.address={address}", name=f"r{k}")
            waited = time.monotonic() - started
            run.assert_failed(
                f"no Dask scheduler answered at {address} within cluster.timeout=0.2 s; check the address and "
                "that the scheduler runs, or raise cluster.timeout"
            )
            assert 0.2 <= waited < 5, waited
    run_app(tmp_path, *common, "cluster.address=tcp://127.0.0.1:1", "cluster.timeout=0", name="zero").assert_failed(
        "cluster.timeout must be a positive number of seconds, got 0.0"
    )
    run_app(tmp_path, *common, "cluster.address=ftp://host:1", name="scheme").assert_failed(
        "cluster.address=ftp://host:1: unknown address scheme 'ftp'"
    )


def test_a_signal_while_a_local_cluster_starts_is_held_and_its_workers_ignore_ctrl_c() -> None:
    """While a local cluster starts, a SIGTERM / SIGINT waits, then reaches the run's own handler once
    the cluster can be closed; threads started meanwhile (Dask's, which start the workers) have
    SIGINT blocked, and pass it on to the worker processes they spawn."""
    from gpu_hpi.dask import cluster

    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    masks: list[set[signal.Signals]] = []
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(KeyboardInterrupt), cluster._signals_held():
            signal.raise_signal(signal.SIGTERM)
            thread = threading.Thread(target=lambda: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
            thread.start()
            thread.join()
            assert received == []  # held
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert signal.SIGINT in masks[0]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # this thread's mask is back


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "cluster.n_workers=0",
            "cluster.n_workers must be at least 1 (or null: Dask's default), got 0",
        ),  # waited for ever
        ("cluster.threads_per_worker=0", "cluster.threads_per_worker must be at least 1, got 0"),  # ZeroDivisionError
        ("cluster.memory_limit=banana", "cluster.memory_limit='banana': Could not interpret 'banana' as a byte unit"),
        ("cluster.memory_limit=1KB", "cluster.memory_limit='1KB' leaves a worker 1,000 bytes"),  # paused for ever
        ("cluster.memory_limit=-5GB", "leaves a worker -5,000,000,000 bytes"),  # a msgpack traceback
    ],
)
def test_local_workers_that_cannot_work_are_one_line(tmp_path: Path, option: str, message: str) -> None:
    """Refused before any worker starts (tracebacks, or a run that waited for ever, before)."""
    write_dataset(tmp_path / "ds", n=2_000, parts=1)
    started = time.monotonic()
    run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'ds'}", "cluster=local", option).assert_failed(message)
    assert time.monotonic() - started < 5
