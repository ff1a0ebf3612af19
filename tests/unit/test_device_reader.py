"""The device readers (io.device, io.device_sales: pylibcudf on the GPU) run on a stand-in of
pylibcudf's API over pyarrow (fake_pylibcudf.py), against the host readers: the same periods of
every date type and periodicity, the same pairs and cell tables, the same sale pairs and drop counts,
the same refusals. tests/gpu/test_gpu.py runs the same code on pylibcudf."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import fake_pylibcudf as fake
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reference import assert_tables_equal
from sales_reference import START, all_counts, assert_same_pairs, made_frame, random_sales, reference_pairs

import gpu_hpi
from gpu_hpi.data.cells import merge_tables
from gpu_hpi.data.pairing import PairingRules, make_pairs
from gpu_hpi.data.pairs import GroupCodes
from gpu_hpi.errors import DataError
from gpu_hpi.io import device
from gpu_hpi.io.device_sales import pair_sales, read_sales
from gpu_hpi.io.pairs import PairSource
from gpu_hpi.io.periods import check_footer_dates, column_periods, footer_days
from gpu_hpi.io.sales import SaleSource

CPU = gpu_hpi.resolve_backend("cpu")


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch) -> device.Ops:
    monkeypatch.setattr(device, "library", lambda: fake.plc)
    monkeypatch.setattr(device, "device_array", fake.host_array)
    return device.Ops(fake.plc)


def write(path: Path, table: pa.Table, **kw: Any) -> Path:
    pq.write_table(table, path, **kw)
    return path


def stamps(unit: str, seed: int = 11) -> np.ndarray:
    """Timestamps over month ends, leap days and before 1970, with times of day."""
    rng = np.random.default_rng(seed)
    days = np.concatenate([rng.integers(-30_000, 40_000, 3000), [-1, 0, 31, 59, 60, 10_957, 11_016, 11_017]])
    seconds = rng.integers(0, 86_400, days.size).astype("timedelta64[s]")
    return (days.astype("datetime64[D]") + seconds).astype(f"datetime64[{unit}]")


@pytest.mark.parametrize("periodicity", ["week", "month", "quarter", "year"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns", "date"])
def test_periods_of_timestamps_and_dates_equal_the_host(ops: device.Ops, unit: str, periodicity: str) -> None:
    values = stamps("s")
    arr = (
        pa.array(values.astype("datetime64[D]"), pa.date32())
        if unit == "date"
        else pa.array(values.astype(f"datetime64[{unit}]"))
    )
    got = ops.to_host(device.periods(ops, fake.Column(arr), "d", periodicity))
    np.testing.assert_array_equal(got, column_periods(arr, "d", periodicity))


@pytest.mark.parametrize("kind", ["month_strings", "yyyymm", "positions"])
def test_other_period_types_take_the_host_conversion(ops: device.Ops, kind: str) -> None:
    months = np.arange(0, 40)
    arr, integer_periods = {
        "month_strings": (pa.array([f"{2014 + m // 12}-{m % 12 + 1:02d}" for m in months]), "index"),
        "yyyymm": (pa.array((2014 + months // 12) * 100 + months % 12 + 1), "yyyymm"),
        "positions": (pa.array(months), "index"),
    }[kind]
    got = ops.to_host(device.periods(ops, fake.Column(arr), "d", "month", integer_periods, "2014-01"))
    np.testing.assert_array_equal(got, START + months)


def test_zoned_timestamps_take_the_host_conversion_in_their_zone(ops: device.Ops) -> None:
    """libcudf reads a zoned timestamp as its UTC instants without the zone: given the file's type,
    the periods and order are the zone's (as the host reader's); a sale at 23:30 UTC on 31 January
    in Seoul is in February."""
    zoned_type = pa.timestamp("us", tz="Asia/Seoul")
    utc = np.array(["2014-01-31T23:30", "2014-02-15T12:00", "2014-06-30T16:00"], dtype="datetime64[us]")
    zoned = pa.array(utc.astype(np.int64), pa.int64()).cast(zoned_type)
    as_read = fake.Column(zoned)  # the stand-in drops the zone as libcudf does
    got = ops.to_host(device.periods(ops, as_read, "d", "month", file_type=zoned_type))
    np.testing.assert_array_equal(got, column_periods(zoned, "d", "month"))
    assert (got - START).tolist() == [1, 1, 6]
    assert (ops.to_host(device.periods(ops, as_read, "d", "month")) - START).tolist() == [0, 1, 5]  # UTC months


def test_implausible_dates_are_refused_on_the_device_as_on_the_host(ops: device.Ops) -> None:
    ns = stamps("ns").astype(np.int64)
    bad = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))  # nanoseconds stored as milliseconds
    with pytest.raises(DataError, match=r"column 'd'.*finer.*nanoseconds stored as milliseconds"):
        device.periods(ops, fake.Column(bad), "d", "month")
    with pytest.raises(DataError, match=r"column 'd'.*finer.*nanoseconds stored as milliseconds"):
        column_periods(bad, "d", "month")


def seed_pairs(n: int, seed: int, *, nulls: bool = True, groups: str = "int") -> pa.Table:
    rng = np.random.default_rng(seed)
    prev = rng.integers(0, 40, n)
    recent = prev + rng.integers(0, 12, n)  # some same-period pairs, dropped and counted
    months = np.datetime64("2014-01", "M")
    table = {
        "group_id": rng.integers(3, 9, n) if groups == "int" else rng.choice(["east", "west", "north"], n),
        "PrevYearMonth": (months + prev).astype("datetime64[ns]"),
        "RecentYearMonth": (months + recent).astype("datetime64[ns]"),
        "LogPriceDiff": rng.normal(0.01, 0.1, n),
    }
    out = pa.table(table)
    if nulls:  # null periods (dropped by the reader) and a null y (a non-finite y: dropped by the table)
        mask = rng.random(n) < 0.02
        out = out.set_column(1, "PrevYearMonth", pa.array(table["PrevYearMonth"], mask=mask))
        out = out.set_column(3, "LogPriceDiff", pa.array(table["LogPriceDiff"], mask=rng.random(n) < 0.01))
    return out


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


def no_array(col: Any) -> Any:
    raise AssertionError("an array was made of a device column")


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
    """The libcudf table (io.device.cell_table) states the drop rules as data.pairs.invalid_masks
    does: the same cells, sums and drop counts on pairs failing every rule, several at once."""
    from reference import random_problem

    p = random_problem(np.random.default_rng(8))
    group = p.group_float() if groups else None
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, group, n_periods=p.n_periods, backend=CPU)
    want = gpu_hpi.build_cell_table(pairs, CPU)
    got = device.cell_table(ops, pairs)
    assert got.dropped == want.dropped and len(want.dropped) >= 4
    assert_tables_equal(got, want)
    with pytest.raises(DataError, match="strict"):
        device.cell_table(ops, pairs, strict=True)


def test_footer_statistics_refuse_before_reading(tmp_path: Path) -> None:
    ns = stamps("ns").astype(np.int64)
    bad = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))
    path = write(tmp_path / "bad.parquet", pa.table({"d": bad, "x": np.ones(len(ns))}), row_group_size=500)
    with pytest.raises(DataError, match=r"column 'd'.*finer.*nanoseconds stored as milliseconds"):
        check_footer_dates([str(path)], ["d"])
    good = write(tmp_path / "good.parquet", pa.table({"d": pa.array(stamps("ms")), "x": np.ones(len(ns))}))
    values = stamps("ms").astype("datetime64[D]").astype(np.int64)
    assert footer_days([str(good)], "d") == (int(values.min()), int(values.max()))
    check_footer_dates([str(good)], ["d"])
    no_stats = write(tmp_path / "no-stats.parquet", pa.table({"d": bad}), write_statistics=False)
    assert footer_days([str(no_stats)], "d") is None  # the readers check the values instead
    check_footer_dates([str(no_stats)], ["d"])
    empty = write(tmp_path / "empty.parquet", pa.table({"d": pa.array([], pa.timestamp("ms"))}))
    assert footer_days([str(good), str(empty)], "d") == footer_days([str(good)], "d")  # an empty part
    nulls = pa.table({"d": pa.array([None, None], pa.timestamp("ms"))})
    assert footer_days([str(write(tmp_path / "nulls.parquet", nulls))], "d") is None
    assert footer_days([str(good), str(tmp_path / "nulls.parquet")], "d") == footer_days([str(good)], "d")


# sale records


def device_pairs(ops: device.Ops, source: SaleSource, options: dict[str, Any], n_periods: int = 48) -> Any:
    files, _ = PairSource(source.path, source.format, {}).files()
    read = read_sales(ops, files, source)
    return read, pair_sales(ops, read, PairingRules(**options), START, n_periods)


def assert_same_sales(ops: device.Ops, source: SaleSource, options: dict[str, Any]) -> tuple[Any, Any]:
    """The device reader and pairing give the host reader's and make_pairs' counts and pairs."""
    host = source.read()
    read, made = device_pairs(ops, source, options)
    assert (read.n_sales, read.n_missing_date, read.dropped) == (host.n_sales, host.n_missing_date, host.dropped)
    assert read.n_usable == host.period.size
    want = make_pairs(host.to_sales(CPU, START, 48), PairingRules(**options), CPU)
    assert made.dropped == want.dropped
    assert_same_pairs(made_frame(made, START), made_frame(want, START))
    return read, made


@pytest.mark.parametrize(
    "options",
    [
        {"pairing": "consecutive"},
        {"pairing": "all"},
        {"pairing": "consecutive", "max_annual_return": 1.5, "max_robust_z": 3.0},
        {"pairing": "all", "min_holding": 2, "max_holding": 30, "max_robust_z": 2.5},
    ],
    ids=["consecutive", "all", "return-and-z", "holding-and-z"],
)
@pytest.mark.parametrize("keys", [["a"], ["a", "b", "c"]], ids=["a", "abc"])
def test_sale_pairing_equals_make_pairs_and_the_reference(
    ops: device.Ops, tmp_path: Path, keys: list[str], options: dict[str, Any]
) -> None:
    df = random_sales(41 + len(keys))
    # times of day: the last sale of a month is the latest timestamp
    df["date"] = df["date"] + pd.to_timedelta(np.random.default_rng(2).integers(0, 86400, len(df)), unit="s")
    table = pa.Table.from_pandas(df[[*keys, "date", "price", "group"]], preserve_index=False)
    path = write(tmp_path / "sales.parquet", table, row_group_size=300)
    source = SaleSource(str(path), "auto", keys, "date", "price", "group")
    read, made = assert_same_sales(ops, source, options)
    want, want_dropped = reference_pairs(df, keys, START, 48, options)
    assert all_counts(read.dropped, {"sale_missing_date": read.n_missing_date}, made.dropped) == want_dropped
    assert_same_pairs(made_frame(made, START), want)


@pytest.mark.parametrize("kind", ["dates", "month_strings", "date_strings", "integers", "timestamps_ms"])
def test_sale_date_types_and_integer_groups(ops: device.Ops, tmp_path: Path, kind: str) -> None:
    df = random_sales(43, null_dates=False)
    months = df["date"].dt.year * 12 + df["date"].dt.month - 1
    date = {
        "dates": lambda: pa.array(df["date"].dt.date.to_numpy(object), pa.date32()),
        "month_strings": lambda: pa.array(df["date"].dt.strftime("%Y-%m").to_numpy(object)),
        "date_strings": lambda: pa.array(df["date"].dt.strftime("%Y-%m-%d").to_numpy(object)),
        "integers": lambda: pa.array((months - START).to_numpy(np.int64)),
        "timestamps_ms": lambda: pa.array(df["date"].to_numpy("datetime64[ms]")),
    }[kind]()
    group = pa.array(pd.factorize(df["group"])[0].astype(np.int64))  # integers without nulls: encoded on the device
    table = pa.table({"a": pa.array(df["a"]), "date": date, "price": df["price"].to_numpy(float), "g": group})
    path = write(tmp_path / "sales.parquet", table)
    source = SaleSource(str(path), "auto", ["a"], "date", "price", "g", start="2014-01")
    assert_same_sales(ops, source, {"pairing": "consecutive", "max_robust_z": 3.0})


def test_sales_in_several_files_string_groups_and_float_keys(ops: device.Ops, tmp_path: Path) -> None:
    """Parts of a folder read in order (the later file wins a tie); a NaN key part is a missing key."""
    rng = np.random.default_rng(5)
    n = 4000
    key = rng.integers(0, 500, n).astype(float)
    key[rng.random(n) < 0.03] = np.nan
    dates = (np.datetime64("2014-01", "M") + rng.integers(0, 30, n)).astype("datetime64[D]") + rng.integers(0, 3, n)
    groups = pa.array(rng.choice(["north", "south", None], n).tolist())
    folder = tmp_path / "parts"
    folder.mkdir()
    for part in range(2):
        rows = slice(part * n // 2, (part + 1) * n // 2)
        table = pa.table({"k": key[rows], "date": dates[rows], "price": rng.uniform(1, 2, n // 2), "g": groups[rows]})
        write(folder / f"part-{part}.parquet", table)
    source = SaleSource(str(folder), "parquet", ["k"], "date", "price", "g")
    read, made = assert_same_sales(ops, source, {"pairing": "consecutive", "max_robust_z": 2.0})
    assert read.dropped["sale_missing_property"] > 0 and made.dropped["sale_same_period_duplicate"] > 0


def test_sale_refusals_match_the_host_reader(ops: device.Ops, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    n = 50_000
    ns = (np.datetime64("2014-01", "M") + rng.integers(0, 120, n)).astype("datetime64[ns]").astype(np.int64)
    stamps_ms = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))  # nanoseconds stored as milliseconds
    path = write(tmp_path / "sales.parquet", pa.table({"p": rng.integers(0, 9000, n), "d": stamps_ms, "x": np.ones(n)}))
    with pytest.raises(DataError, match=r"column 'd'.*finer.*nanoseconds stored as milliseconds"):
        device_pairs(ops, SaleSource(str(path), "auto", ["p"], "d", "x"), {})
    text = write(tmp_path / "text.parquet", pa.table({"p": [1, 1], "d": ["2014-01", "2014-02"], "x": ["a", "b"]}))
    with pytest.raises(DataError, match=r"column 'x'.*numeric"):
        device_pairs(ops, SaleSource(str(text), "auto", ["p"], "d", "x"), {})
    with pytest.raises(DataError, match="'missing'"):
        device_pairs(ops, SaleSource(str(text), "auto", ["missing"], "d", "x"), {})


def test_reads_on_device_only_for_parquet_on_a_gpu(ops: device.Ops, tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text("p,date,price\n1,2014-01,100\n")
    assert not SaleSource(str(csv), "auto", ["p"], "date", "price").reads_on_device(gpu=True)
    path = write(tmp_path / "sales.parquet", pa.table({"p": [1], "date": ["2014-01"], "price": [1.0]}))
    assert not SaleSource(str(path), "auto", ["p"], "date", "price").reads_on_device(gpu=False)
    assert SaleSource(str(path), "auto", ["p"], "date", "price").reads_on_device(gpu=True)


def test_decimal_prices_are_numbers(ops: device.Ops, tmp_path: Path) -> None:
    prices = pa.array([Decimal("100.50"), Decimal("120.25"), Decimal("130.00")], pa.decimal128(12, 2))
    table = pa.table({"p": [1, 1, 1], "date": ["2014-01", "2014-02", "2014-03"], "price": prices})
    source = SaleSource(str(write(tmp_path / "sales.parquet", table)), "auto", ["p"], "date", "price")
    _, made = assert_same_sales(ops, source, {})
    assert made.n_pairs == 2 and np.asarray(made.price_recent).tolist() == [120.25, 130.0]


def test_a_sale_without_a_key_still_has_its_date_checked(ops: device.Ops, tmp_path: Path) -> None:
    """As the host reader: every dated sale's period is made before the sales without a key are
    dropped, so an impossible date is refused even there."""
    days = np.array(["2014-01-05", "2014-02-05", "1700-01-01"], dtype="datetime64[D]")
    table = pa.table({"p": pa.array([1, 1, None], pa.int64()), "date": days, "price": [1.0, 2.0, 3.0]})
    source = SaleSource(str(write(tmp_path / "sales.parquet", table)), "auto", ["p"], "date", "price")
    for read in (source.read, lambda: device_pairs(ops, source, {})):
        with pytest.raises(DataError, match="1700"):
            read()


def test_the_window_drops_sales_outside_and_counts_them(ops: device.Ops, tmp_path: Path) -> None:
    df = random_sales(47)
    table = pa.Table.from_pandas(df[["a", "date", "price", "group"]], preserve_index=False)
    source = SaleSource(str(write(tmp_path / "sales.parquet", table)), "auto", ["a"], "date", "price", "group")
    host = source.read()
    files, _ = PairSource(source.path, "auto", {}).files()
    read = read_sales(ops, files, source)
    rules = PairingRules()
    made = pair_sales(ops, read, rules, START + 5, 20)
    want = make_pairs(replace(host).to_sales(CPU, START + 5, 20), rules, CPU)
    assert made.dropped == want.dropped and made.dropped["sale_outside_window"] > 0
    assert_same_pairs(made_frame(made, START + 5), made_frame(want, START + 5))


# the job's GPU branch (device reader, host tables, the solve) on the stand-in


@pytest.fixture
def stand_in_gpu(ops: device.Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    """backend=gpu runs with numpy arrays as the device's and the stand-in as pylibcudf (the fused
    kernel's bincount reference in place of the kernel; no device memory to size or report)."""
    import scipy.sparse
    import scipy.sparse.linalg

    from gpu_hpi.app import load_pairs, pipeline, report
    from gpu_hpi.backend.core import Backend, resolve_backend

    class StandIn(Backend):
        def synchronize(self) -> None:
            pass

    stand_in = StandIn("gpu", np, scipy.sparse, scipy.sparse.linalg, "GPU stand-in (numpy)")

    def resolve(choice: str = "auto") -> Backend:
        return stand_in if choice == "gpu" else resolve_backend(choice)

    monkeypatch.setattr(pipeline, "resolve_backend", resolve)
    monkeypatch.setattr(report, "peak_device_bytes", lambda backend: None)
    monkeypatch.setattr(load_pairs, "device_read_budget", lambda backend, maximum=None: 1 << 30)
    monkeypatch.setenv("GPU_HPI_FUSED_KERNEL", "0")


@pytest.mark.parametrize(
    "job",
    ["pairs", "pairs-robust", "pairs-accuracy", "sales", "sales-filters", "sales-robust"],
)
def test_the_gpu_job_on_the_stand_in_equals_the_cpu_job(stand_in_gpu: None, tmp_path: Path, job: str) -> None:
    """pipeline.run on backend=gpu (the device readers, tables summed on the host, the pairs kept on
    the device for the methods that need them) gives backend=cpu's index and drop counts."""
    from helpers import run_app

    pairs = write(tmp_path / "pairs.parquet", seed_pairs(6000, 4), row_group_size=1500)
    df = random_sales(53)
    sales = write(
        tmp_path / "sales.parquet", pa.Table.from_pandas(df[["a", "b", "date", "price", "group"]], preserve_index=False)
    )
    on_sales = ["data=transactions", f"data.path={sales}", "data.columns.property=[a,b]", "data.columns.group=group"]
    overrides = {
        "pairs": ["data=pairs", f"data.path={pairs}"],
        "pairs-robust": ["data=pairs", f"data.path={pairs}", "method=robust"],
        "pairs-accuracy": ["data=pairs", f"data.path={pairs}", "diagnostics.accuracy_folds=3", "data.start=2014-02"],
        "sales": on_sales,
        "sales-filters": [*on_sales, "data.max_holding=30", "data.max_annual_return=1.0", "data.max_robust_z=3"],
        "sales-robust": [*on_sales, "method=robust", "data.start=2014-03"],
    }[job]
    runs = {b: run_app(tmp_path, *overrides, f"backend={b}", name=f"{job}-{b}").ok() for b in ("gpu", "cpu")}
    got, want = (runs[b].frame for b in ("gpu", "cpu"))
    np.testing.assert_allclose(got["log_index"], want["log_index"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["se"], want["se"], rtol=1e-8, atol=1e-12)
    summaries = {b: runs[b].summary for b in ("gpu", "cpu")}
    assert summaries["gpu"]["dropped"] == summaries["cpu"]["dropped"]
    assert summaries["gpu"]["backend"] == "gpu" and summaries["cpu"]["backend"] == "cpu"


def test_a_table_only_gpu_job_makes_no_array(
    stand_in_gpu: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair file reduced to its cell table and fitted from it (bmn, as by default) is libcudf's
    work alone: no device column is viewed as an array and the GPU backend's array namespace is
    never asked for, so CuPy is not imported (1.1 s of start-up)."""
    from helpers import run_app

    from gpu_hpi.backend.core import Backend

    def no_namespace(backend: Backend) -> Any:
        if backend.is_gpu:
            raise AssertionError("the GPU's array namespace was used")
        return np

    pairs = write(tmp_path / "pairs.parquet", seed_pairs(6000, 4), row_group_size=1500)
    want = run_app(tmp_path, "data=pairs", f"data.path={pairs}", "backend=cpu", name="cpu").ok()
    monkeypatch.setattr(device, "device_array", no_array)
    monkeypatch.setattr(Backend, "xp", property(no_namespace))
    got = run_app(tmp_path, "data=pairs", f"data.path={pairs}", "backend=gpu", name="gpu").ok()
    np.testing.assert_allclose(got.frame["log_index"], want.frame["log_index"], rtol=0, atol=1e-10)
    assert got.summary["dropped"] == want.summary["dropped"] and got.summary["backend"] == "gpu"
