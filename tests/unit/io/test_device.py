"""The device reader of pair files (io/device.py: pylibcudf on the GPU) run on a stand-in of pylibcudf's
API over pyarrow (tests/fake_pylibcudf.py, the `ops` fixture of tests/conftest.py), against the host
readers: the same periods of every date type and periodicity, the same pairs and cell tables, the
same refusals. tests/gpu/test_gpu.py runs the same code on pylibcudf."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import fake_pylibcudf as fake
import numpy as np
import pyarrow as pa
import pytest
from fake_pylibcudf import no_array
from helpers import seed_pairs, stamps, write
from reference import assert_tables_equal
from sales_reference import START

import gpu_hpi
from gpu_hpi.data.cells import merge_tables
from gpu_hpi.data.pairs import GroupCodes
from gpu_hpi.errors import DataError
from gpu_hpi.io import device, device_columns
from gpu_hpi.io.pairs import PairSource
from gpu_hpi.io.periods import column_periods

CPU = gpu_hpi.resolve_backend("cpu")


@pytest.mark.parametrize("periodicity", ["week", "month", "quarter", "year"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns", "date"])
def test_periods_of_timestamps_and_dates_equal_the_host(ops: device.Ops, unit: str, periodicity: str) -> None:
    values = stamps("s")
    arr = (
        pa.array(values.astype("datetime64[D]"), pa.date32())
        if unit == "date"
        else pa.array(values.astype(f"datetime64[{unit}]"))
    )
    got = ops.to_host(device_columns.periods(ops, fake.Column(arr), "d", periodicity))
    np.testing.assert_array_equal(got, column_periods(arr, "d", periodicity))


@pytest.mark.parametrize("kind", ["month_strings", "yyyymm", "positions"])
def test_other_period_types_take_the_host_conversion(ops: device.Ops, kind: str) -> None:
    months = np.arange(0, 40)
    arr, integer_periods = {
        "month_strings": (pa.array([f"{2014 + m // 12}-{m % 12 + 1:02d}" for m in months]), "index"),
        "yyyymm": (pa.array((2014 + months // 12) * 100 + months % 12 + 1), "yyyymm"),
        "positions": (pa.array(months), "index"),
    }[kind]
    got = ops.to_host(device_columns.periods(ops, fake.Column(arr), "d", "month", integer_periods, "2014-01"))
    np.testing.assert_array_equal(got, START + months)


def test_zoned_timestamps_take_the_host_conversion_in_their_zone(ops: device.Ops) -> None:
    """libcudf reads a zoned timestamp as its UTC instants without the zone: given the file's type,
    the periods and order are the zone's (as the host reader's); a sale at 23:30 UTC on 31 January
    in Seoul is in February."""
    zoned_type = pa.timestamp("us", tz="Asia/Seoul")
    utc = np.array(["2014-01-31T23:30", "2014-02-15T12:00", "2014-06-30T16:00"], dtype="datetime64[us]")
    zoned = pa.array(utc.astype(np.int64), pa.int64()).cast(zoned_type)
    as_read = fake.Column(zoned)  # the stand-in drops the zone as libcudf does
    got = ops.to_host(device_columns.periods(ops, as_read, "d", "month", file_type=zoned_type))
    np.testing.assert_array_equal(got, column_periods(zoned, "d", "month"))
    assert (got - START).tolist() == [1, 1, 6]
    assert (ops.to_host(device_columns.periods(ops, as_read, "d", "month")) - START).tolist() == [0, 1, 5]  # UTC months


def test_implausible_dates_are_refused_on_the_device_as_on_the_host(ops: device.Ops) -> None:
    ns = stamps("ns").astype(np.int64)
    bad = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))  # nanoseconds stored as milliseconds
    with pytest.raises(DataError, match=r"column 'd'.*finer.*nanoseconds stored as milliseconds"):
        device_columns.periods(ops, fake.Column(bad), "d", "month")
    with pytest.raises(DataError, match=r"column 'd'.*finer.*nanoseconds stored as milliseconds"):
        column_periods(bad, "d", "month")


def tables(
    source: PairSource, gpu: bool, start: int | None = None, end: int | None = None, arrays: bool = True
) -> tuple[Any, int]:
    """(the merged table of every batch, rows dropped for a null period)."""
    parts, missing = [], 0
    for batch in source.batches(gpu=gpu, arrays=arrays):
        missing += batch.missing_period
        lo, table = batch.cell_table(start, end, CPU)
        parts.append(table.shift(lo - START, 60))
    return merge_tables(parts), missing


@pytest.mark.parametrize("groups", ["int", "str"])
@pytest.mark.parametrize("window", [None, "2014-03"])
def test_pair_reader_gives_the_host_readers_tables(
    ops: device.Ops, tmp_path: Path, groups: str, window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "pairs.parquet", seed_pairs(5000, 1, groups=groups), row_group_size=700)
    columns = {"group": "group_id", "prev": "PrevYearMonth", "recent": "RecentYearMonth", "y": "LogPriceDiff"}
    # reads of two row groups: several device batches, each counted from its own first period
    source = PairSource(str(path), "auto", columns, start=window, device_read_bytes=1400 * 44)
    device_batches = list(source.batches(gpu=True))
    assert len(device_batches) > 2
    assert isinstance(device_batches[0].group, GroupCodes) == (groups == "int")
    start = None if window is None else START + 2
    got, got_missing = tables(source, True, start)
    want, want_missing = tables(source, False, start)
    assert got_missing == want_missing > 0
    assert_tables_equal(got, want)
    assert got.dropped == want.dropped and got.dropped["nonfinite_y"] > 0
    # the table alone from libcudf's columns, without an array (no CuPy); string groups: arrays
    column_batches = list(source.batches(gpu=True, arrays=False))
    assert all((b.ops is not None) == (groups == "int") for b in column_batches)
    assert [b.n_rows for b in column_batches] == [b.n_rows for b in device_batches]
    for columns_batch, arrays_batch in zip(column_batches, device_batches, strict=True):
        shifted = columns_batch.periods_from(columns_batch.origin - 3)  # libcudf's subtraction
        for got_periods, want_periods in zip(shifted, arrays_batch.periods_from(arrays_batch.origin - 3), strict=True):
            np.testing.assert_array_equal(
                fake.host_array(got_periods) if groups == "int" else got_periods, want_periods
            )
    if groups == "int":
        monkeypatch.setattr(device, "device_array", no_array)
    got, got_missing = tables(source, True, start, arrays=False)
    assert got_missing == want_missing
    assert_tables_equal(got, want)
    assert got.dropped == want.dropped


def test_pair_reader_prices_and_periods_from_the_window_start(ops: device.Ops, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 2000
    prev = rng.integers(0, 30, n)
    table = pa.table(
        {
            "s1": pa.array((2014 + prev // 12) * 100 + prev % 12 + 1),
            "s2": pa.array((2014 + (prev + 3) // 12) * 100 + (prev + 3) % 12 + 1),
            "p1": rng.uniform(1, 2, n),
            "p2": pa.array([Decimal(f"{v:.2f}") for v in rng.uniform(1, 2, n)], pa.decimal128(10, 2)),
        }
    )
    path = write(tmp_path / "pairs.parquet", table)
    roles = {"prev": "s1", "recent": "s2", "y": None, "price_prev": "p1", "price_recent": "p2"}
    source = PairSource(str(path), "auto", roles, integer_periods="yyyymm", start="2014-02")
    (batch,) = source.batches(gpu=True)
    (host,) = source.batches(gpu=False)
    assert batch.origin == START + 1 and batch.bounds == (START, START + 32)
    for got, want in zip(batch.periods_from(START + 1), host.periods_from(START + 1), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(batch.y, host.y)
    np.testing.assert_array_equal(batch.price_recent, host.price_recent)


@pytest.mark.parametrize("groups", [True, False])
def test_device_cell_table_equals_build_cell_table(ops: device.Ops, groups: bool) -> None:
    """The libcudf table (io.device_columns.cell_table) states the drop rules as data.pairs.invalid_masks
    does: the same cells, sums and drop counts on pairs failing every rule, several at once."""
    from reference import random_problem

    p = random_problem(np.random.default_rng(8))
    group = p.group_float() if groups else None
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, group, n_periods=p.n_periods, backend=CPU)
    want = gpu_hpi.build_cell_table(pairs, CPU)
    got = device_columns.cell_table(ops, pairs)
    assert got.dropped == want.dropped and len(want.dropped) >= 4
    assert_tables_equal(got, want)
    with pytest.raises(DataError, match="strict"):
        device_columns.cell_table(ops, pairs, strict=True)
