"""Dask execution (dask/tables.py): every row group in one partition, the same table as a single
process, surviving a killed worker, and DuckDB's query per partition on CPU workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from helpers import write_dataset

import gpu_hpi
from gpu_hpi.io.pairs import PairSource

distributed = pytest.importorskip("distributed")

from gpu_hpi.dask.cluster import cluster_client  # noqa: E402
from gpu_hpi.dask.tables import dask_cell_table, partitions  # noqa: E402

COLUMNS = {"group": "group_id", "prev": "PrevYearMonth", "recent": "RecentYearMonth", "y": "LogPriceDiff"}


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


def declined(*args: Any, **kwargs: Any) -> Any:
    """DuckDB's reader declining the input, as for a column pyarrow must read."""
    from gpu_hpi.io.sql import Unsupported

    raise Unsupported("left to the batch reader")
