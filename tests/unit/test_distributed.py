"""Dask execution: the same table and index as a single process, surviving a killed worker."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import run_app

import gpu_hpi
from gpu_hpi.io.pairs import PairSource
from gpu_hpi.synthetic import SyntheticMarket

distributed = pytest.importorskip("distributed")

from gpu_hpi.dask.cluster import cluster_client  # noqa: E402
from gpu_hpi.dask.tables import dask_cell_table, partitions  # noqa: E402

COLUMNS = {"group": "group_id", "prev": "PrevYearMonth", "recent": "RecentYearMonth", "y": "LogPriceDiff"}


def write_dataset(
    directory: Path, n: int = 60_000, parts: int = 3, seed: int = 5, edit: Callable[[pd.DataFrame], None] | None = None
) -> pd.DataFrame:
    """A dataset of `parts` parquet files with small row groups; windows differ between files;
    `edit` changes the pairs (in place) before they are written."""
    group, prev, recent, y = SyntheticMarket.create(n, 48, 4, seed=seed).arrays()
    month = np.datetime64("2015-01", "M")
    frame = pd.DataFrame(
        {
            "group_id": group.astype(np.int64) + 100,
            "PrevYearMonth": (month + prev.astype(np.int64)).astype("datetime64[ns]"),
            "RecentYearMonth": (month + recent.astype(np.int64)).astype("datetime64[ns]"),
            "LogPriceDiff": y,
        }
    ).sort_values("RecentYearMonth", kind="stable")
    frame.loc[frame.index[::997], "LogPriceDiff"] = np.nan  # some invalid pairs
    if edit is not None:
        edit(frame)
    directory.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    for k in range(parts):
        frame.iloc[bounds[k] : bounds[k + 1]].to_parquet(
            directory / f"part-{k}.parquet", index=False, row_group_size=2_500
        )
    return frame


def single_process_table(directory: Path) -> gpu_hpi.CellTable:
    from gpu_hpi.data.cells import TableAccumulator

    source = PairSource(str(directory), "auto", COLUMNS, batch_rows=7_000)
    acc = TableAccumulator()
    for batch in source.batches():
        acc.add(*batch.cell_table(None, None, gpu_hpi.resolve_backend("cpu")))
    return acc.total()[1]


@pytest.fixture(scope="module")
def client() -> Any:
    config = SimpleNamespace(kind="local", address=None, n_workers=2, threads_per_worker=1, memory_limit="auto")
    with cluster_client(config, SimpleNamespace()) as c:
        yield c


@pytest.fixture(scope="module")
def scheduler() -> Any:
    """The address of a running two-worker cluster, for CLI runs with cluster.address (one cluster
    started for the module instead of one a run; cluster=local itself is tested below)."""
    config = SimpleNamespace(kind="local", address=None, n_workers=2, threads_per_worker=1, memory_limit="auto")
    with cluster_client(config, SimpleNamespace()) as c:
        yield c.scheduler.address


def assert_same_table(a: gpu_hpi.CellTable, b: gpu_hpi.CellTable) -> None:
    assert a.n_periods == b.n_periods
    np.testing.assert_array_equal(a.group_labels, b.group_labels)
    for name in ("group", "prev", "recent", "count"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in a.sums:
        np.testing.assert_allclose(a.sums[name], b.sums[name], rtol=1e-12, atol=1e-9)
    assert a.dropped == b.dropped


def test_partitions_cover_every_row_group(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds", n=20_000, parts=2)
    parts = partitions(PairSource(str(tmp_path / "ds"), "auto", COLUMNS, batch_rows=6_000))
    assert sum(p.n_rows for p in parts) == 20_000
    assert {p.path for p in parts} == {str(f) for f in sorted((tmp_path / "ds").glob("*.parquet"))}
    assert all(p.n_rows >= 6_000 or p is parts[-1] or parts[parts.index(p) + 1].path != p.path for p in parts)


def test_dask_table_equals_single_process(client: Any, tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds")
    source = PairSource(str(tmp_path / "ds"), "auto", COLUMNS, batch_rows=7_000)
    first, table, missing, kept = dask_cell_table(client, source, partitions(source), None, None, "cpu", False)
    assert first == 2015 * 12 and missing == 0 and sum(kept) == 60_000
    assert table.dropped == {"nonfinite_y": 61}
    assert_same_table(table, single_process_table(tmp_path / "ds"))


def test_a_killed_worker_does_not_change_the_result(client: Any, tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds", n=80_000, parts=4)
    source = PairSource(str(tmp_path / "ds"), "auto", COLUMNS, batch_rows=5_000)
    pids = client.run(os.getpid)
    killed: list[int] = []

    def kill_a_worker_once(_rows: int) -> None:
        # the first finished partition: kill a worker holding results, mid-run
        if not killed:
            pid = next(iter(pids.values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    first, table, _, _ = dask_cell_table(
        client, source, partitions(source), None, None, "cpu", False, kill_a_worker_once
    )
    assert killed, "the worker was not killed"
    assert_same_table(table, single_process_table(tmp_path / "ds"))
    assert first == 2015 * 12


@pytest.mark.slow  # starts a cluster of its own
def test_cli_cluster_local_equals_single_process(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds")
    common = ["data=pairs", f"data.path={tmp_path / 'ds'}", "data.batch_rows=7000", "diagnostics.revision=false"]
    single = run_app(tmp_path, *common, name="single").ok()
    dask = run_app(tmp_path, *common, "cluster=local", "cluster.n_workers=2", name="dask").ok()
    a, b = single.frame, dask.frame
    pd.testing.assert_frame_equal(a[["group", "period", "n_pairs"]], b[["group", "period", "n_pairs"]])
    np.testing.assert_allclose(a["log_index"], b["log_index"], atol=1e-10, rtol=0)
    np.testing.assert_allclose(a["se"], b["se"], rtol=1e-10)
    assert dask.summary["dask_workers"] == 2
    assert dask.summary["dropped"] == single.summary["dropped"]


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["solver=lsqr"], "cluster=none"),
        (["method=case_shiller", "method.stage2=absolute"], "cluster=none"),
    ],
)
def test_cli_cluster_refuses_what_needs_the_pairs(tmp_path: Path, overrides: list[str], fragment: str) -> None:
    write_dataset(tmp_path / "ds", n=5_000, parts=1)
    run = run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'ds'}", "cluster=local", *overrides)
    run.assert_failed(fragment)


def test_cli_cluster_refuses_csv(tmp_path: Path) -> None:
    frame = write_dataset(tmp_path / "ds", n=3_000, parts=1)
    frame.to_csv(tmp_path / "pairs.csv", index=False)
    run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'pairs.csv'}", "cluster=local").assert_failed("parquet")


@pytest.mark.parametrize(
    "extra",
    [
        [],
        pytest.param(["index.groups=false"], marks=pytest.mark.slow),
        pytest.param(["method=case_shiller"], marks=pytest.mark.slow),
    ],
)
def test_cli_cluster_accuracy_equals_single_process(tmp_path: Path, scheduler: str, extra: list[str]) -> None:
    """k-fold accuracy with the passes over the pairs as Dask tasks: folds hash a pair's position in
    the whole dataset, so the errors equal the single-process ones."""

    def null_periods(frame: pd.DataFrame) -> None:  # they shift the positions the folds hash
        frame.iloc[::501, frame.columns.get_loc("PrevYearMonth")] = pd.NaT

    frame = write_dataset(tmp_path / "ds", n=30_000, parts=3, edit=null_periods)
    common = [
        "data=pairs",
        f"data.path={tmp_path / 'ds'}",
        "data.batch_rows=6000",
        "diagnostics.revision=false",
        "diagnostics.accuracy_folds=4",
        *extra,
    ]
    single = run_app(tmp_path, *common, name="single").ok()
    dask = run_app(tmp_path, *common, "cluster=local", f"cluster.address={scheduler}", name="dask").ok()
    a = pd.read_csv(single.dir / "accuracy.csv")
    b = pd.read_csv(dask.dir / "accuracy.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    assert single.summary["diagnostics"]["accuracy"] == pytest.approx(dask.summary["diagnostics"]["accuracy"])
    assert dask.summary["dropped"]["missing_period"] == len(range(0, len(frame), 501))


@pytest.mark.parametrize(
    "extra", [pytest.param([], marks=pytest.mark.slow), ["index.groups=false"]]
)  # with groups: the robust fit's many more passes as Dask tasks
def test_cli_cluster_robust_equals_single_process(tmp_path: Path, scheduler: str, extra: list[str]) -> None:
    """The robust fit with its passes over the pairs as Dask tasks (the per-group median |e| by an
    exact distributed selection) gives the single-process index, se and scale."""

    def outliers(frame: pd.DataFrame) -> None:  # so that the weights matter
        frame.loc[frame.index[::53], "LogPriceDiff"] += 1.5

    write_dataset(tmp_path / "ds", n=24_000, parts=3, edit=outliers)
    common = [
        "data=pairs",
        f"data.path={tmp_path / 'ds'}",
        "data.batch_rows=6000",
        "diagnostics.revision=false",
        "method=robust",
        "method.tol=1e-12",
        "method.max_iter=200",
        *extra,
    ]
    single = run_app(tmp_path, *common, name="single").ok()
    dask = run_app(tmp_path, *common, "cluster=local", f"cluster.address={scheduler}", name="dask").ok()
    a, b = single.frame, dask.frame
    np.testing.assert_allclose(a["log_index"], b["log_index"], atol=1e-10, rtol=0)
    np.testing.assert_allclose(a["se"], b["se"], rtol=1e-8)
    for name in single.summary["solver_info"]:
        s, d = single.summary["solver_info"][name], dask.summary["solver_info"][name]
        assert s["converged"] and d["converged"]
        np.testing.assert_allclose(s["scale"], d["scale"], rtol=1e-12)


def test_cpu_partitions_read_by_duckdb_equal_the_batch_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU workers each partition is the DuckDB query over its rows (their row groups only); the
    same (window, table, rows without both periods, rows kept) as the pyarrow batch reader."""
    from gpu_hpi.dask import tables

    write_dataset(tmp_path / "ds", n=20_000, parts=2)
    source = PairSource(str(tmp_path / "ds"), "auto", COLUMNS, batch_rows=6_000)
    parts = partitions(source)
    assert [p.first_row for p in parts if p.path == parts[0].path][1] == parts[0].n_rows
    calls = []
    real = tables.sql_cell_table

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["rows"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tables, "sql_cell_table", counted)
    by_duckdb = [tables.partition_table(source, p, None, None, "cpu", False) for p in parts]
    assert calls == [(p.first_row, p.first_row + p.n_rows) for p in parts]
    monkeypatch.setattr(tables, "sql_cell_table", declined)
    by_batches = [tables.partition_table(source, p, None, None, "cpu", False) for p in parts]
    for (first, table, missing, kept), (want_first, want, want_missing, want_kept) in zip(
        by_duckdb, by_batches, strict=True
    ):
        assert (first, missing, kept) == (want_first, want_missing, want_kept)
        assert table is not None and want is not None
        assert_same_table(table, want)


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


def declined(*args: Any, **kwargs: Any) -> Any:
    """DuckDB's reader declining the input, as for a column pyarrow must read."""
    from gpu_hpi.io.sql import Unsupported

    raise Unsupported("left to the batch reader")
