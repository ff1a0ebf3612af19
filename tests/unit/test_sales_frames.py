"""The device reader of sale records (SaleSource.read_frame: cudf on the GPU) run through pandas,
which has the cudf API it uses, against the host reader (SaleSource.read): the same counts and the
same pairs on random sales with composite keys, nulls, ties and same-period duplicates, and the
same refusals. tests/test_gpu.py runs it with cudf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sales_reference import START, all_counts, assert_same_pairs, made_frame, random_sales, reference_pairs

import gpu_hpi
from gpu_hpi.errors import DataError
from gpu_hpi.io.sales import RawSales, SaleSource
from gpu_hpi.transactions import PairingRules, make_pairs

CPU = gpu_hpi.resolve_backend("cpu")


def pair(raw: RawSales, options: dict[str, Any], first: int = START, n_periods: int = 48) -> Any:
    return make_pairs(raw.to_sales(CPU, first, n_periods), PairingRules(**options), CPU)


def assert_same_reading(source: SaleSource, options: dict[str, Any]) -> tuple[RawSales, Any]:
    """read_frame(pandas) and read() give the same counts and pairs; returns the frame reader's."""
    host, frame = source.read(), source.read_frame(pd)
    assert frame.n_sales == host.n_sales
    assert frame.n_missing_date == host.n_missing_date and frame.dropped == host.dropped
    np.testing.assert_array_equal(frame.period, host.period)
    made_host, made_frame_ = pair(host, options), pair(frame, options)
    assert made_frame_.dropped == made_host.dropped
    assert_same_pairs(made_frame(made_frame_, START), made_frame(made_host, START))
    return frame, made_frame_


def write(path: Path, table: pa.Table, **kw: Any) -> Path:
    pq.write_table(table, path, **kw)
    return path


@pytest.mark.parametrize("pairing", ["consecutive", "all"])
@pytest.mark.parametrize("keys", [["a"], ["a", "b", "c"]], ids=["a", "abc"])
def test_frame_reader_equals_the_host_reader_and_the_reference(tmp_path: Path, keys: list[str], pairing: str) -> None:
    df = random_sales(41 + len(keys))
    # times of day: the last sale of a month is the latest timestamp
    df["date"] = df["date"] + pd.to_timedelta(np.random.default_rng(2).integers(0, 86400, len(df)), unit="s")
    table = pa.Table.from_pandas(df[[*keys, "date", "price", "group"]], preserve_index=False)
    path = write(tmp_path / "sales.parquet", table, row_group_size=300)
    options = {"pairing": pairing, "max_annual_return": 1.5, "max_robust_z": 3.0}
    source = SaleSource(str(path), "auto", keys, "date", "price", "group")
    frame, made = assert_same_reading(source, options)
    want, want_dropped = reference_pairs(df, keys, START, 48, options)
    assert all_counts(frame.dropped, {"sale_missing_date": frame.n_missing_date}, made.dropped) == want_dropped
    assert_same_pairs(made_frame(made, START), want)


@pytest.mark.parametrize("kind", ["dates", "month_strings", "date_strings", "integers", "timestamps_ms"])
def test_date_types_and_integer_groups(tmp_path: Path, kind: str) -> None:
    df = random_sales(43, null_dates=False)
    months = df["date"].dt.year * 12 + df["date"].dt.month - 1
    date = {
        "dates": lambda: pa.array(df["date"].dt.date.to_numpy(object), pa.date32()),
        "month_strings": lambda: pa.array(df["date"].dt.strftime("%Y-%m").to_numpy(object)),
        "date_strings": lambda: pa.array(df["date"].dt.strftime("%Y-%m-%d").to_numpy(object)),
        "integers": lambda: pa.array((months - START).to_numpy(np.int64)),
        "timestamps_ms": lambda: pa.array(df["date"].to_numpy("datetime64[ms]")),
    }[kind]()
    group = pa.array(pd.factorize(df["group"])[0].astype(np.int64))  # integers without nulls: kept on the device
    table = pa.table({"a": pa.array(df["a"]), "date": date, "price": df["price"].to_numpy(float), "g": group})
    path = write(tmp_path / "sales.parquet", table)
    source = SaleSource(str(path), "auto", ["a"], "date", "price", "g", start="2014-01")
    assert_same_reading(source, {"pairing": "consecutive"})


def test_several_files_string_groups_and_float_keys(tmp_path: Path) -> None:
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
    frame, made = assert_same_reading(source, {"pairing": "consecutive"})
    assert frame.dropped["sale_missing_property"] > 0 and made.dropped["sale_same_period_duplicate"] > 0


def test_refusals_match_the_host_reader(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    n = 50_000
    ns = (np.datetime64("2014-01", "M") + rng.integers(0, 120, n)).astype("datetime64[ns]").astype(np.int64)
    stamps = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))  # nanoseconds stored as milliseconds
    path = write(tmp_path / "sales.parquet", pa.table({"p": rng.integers(0, 9000, n), "d": stamps, "x": np.ones(n)}))
    source = SaleSource(str(path), "auto", ["p"], "d", "x")
    with pytest.raises(DataError, match=r"column 'd'.*finer.*nanoseconds stored as milliseconds"):
        source.read_frame(pd)
    text = write(tmp_path / "text.parquet", pa.table({"p": [1, 1], "d": ["2014-01", "2014-02"], "x": ["a", "b"]}))
    with pytest.raises(DataError, match=r"column 'x'.*numeric"):
        SaleSource(str(text), "auto", ["p"], "d", "x").read_frame(pd)
    with pytest.raises(DataError, match="'missing'"):
        SaleSource(str(text), "auto", ["missing"], "d", "x").read_frame(pd)


def test_device_library_only_for_parquet_on_a_gpu(tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text("p,date,price\n1,2014-01,100\n")
    assert SaleSource(str(csv), "auto", ["p"], "date", "price").device_library(gpu=True) is None
    path = write(tmp_path / "sales.parquet", pa.table({"p": [1], "date": ["2014-01"], "price": [1.0]}))
    assert SaleSource(str(path), "auto", ["p"], "date", "price").device_library(gpu=False) is None


@pytest.mark.parametrize("labels", ["strings", "integers", "none"])
def test_pairs_frame_writes_what_the_host_writer_writes(tmp_path: Path, labels: str) -> None:
    """save_pairs' device frame (pairs_frame: cudf on the GPU) built by pandas holds the host
    writer's values: periods as first days, a missing group missing, prices."""
    from gpu_hpi.data.calendar import Calendar
    from gpu_hpi.data.pairs import Pairs
    from gpu_hpi.io.pairs import pairs_frame, save_pairs

    rng = np.random.default_rng(7)
    n = 500
    prev = rng.integers(0, 20, n)
    recent = prev + rng.integers(1, 5, n)
    codes = rng.integers(-1, 3, n)
    names = {"strings": np.asarray(["east", "north", "west"], dtype=object), "integers": np.asarray([3, 11, 40])}
    group, group_labels = (None, np.asarray(["ALL"], dtype=object)) if labels == "none" else (codes, names[labels])
    p0, p1 = rng.uniform(1, 2, n), rng.uniform(1, 2, n)
    pairs = Pairs(prev, recent, np.log(p1 / p0), group, group_labels, 24, p0, p1)
    calendar = Calendar("month", START, 24)
    save_pairs(pairs, calendar, str(tmp_path / "host.parquet"))
    pairs_frame(pd, pairs, calendar).to_parquet(tmp_path / "frame.parquet", index=False)
    host, frame = (pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("host", "frame"))
    assert list(frame.columns) == list(host.columns)
    for name in ("PrevYearMonth", "RecentYearMonth"):
        np.testing.assert_array_equal(frame[name].to_numpy("datetime64[D]"), host[name].to_numpy("datetime64[D]"))
    for name in ("LogPriceDiff", "PrevPrice", "RecentPrice"):
        np.testing.assert_array_equal(frame[name].to_numpy(), host[name].to_numpy())
    assert frame["group_id"].isna().tolist() == host["group_id"].isna().tolist()
    assert host["group_id"].isna().any() == (labels != "none")
    present = host["group_id"].notna()
    assert frame["group_id"][present].astype(str).tolist() == host["group_id"][present].astype(str).tolist()


def test_zoned_timestamps_as_cudf_reads_them_take_the_host_conversion() -> None:
    """cudf reads a zoned timestamp as its UTC instants without the zone: given the file's type, the
    device helpers give the periods and order of the zoned column (local wall time), as the host
    reader does; without it, a sale at 23:30 UTC on 31 January would fall in January, not February."""
    from gpu_hpi.io.periods import column_periods, frame_order, frame_periods, order_within_period

    zoned_type = pa.timestamp("us", tz="Asia/Seoul")
    utc = np.array(["2014-01-31T23:30", "2014-02-15T12:00", "2014-06-30T16:00"], dtype="datetime64[us]")
    zoned = pa.array(utc.astype(np.int64), pa.int64()).cast(zoned_type)
    want = column_periods(zoned, "d", "month")
    as_cudf_reads = pd.Series(utc)  # naive, in UTC
    got = frame_periods(as_cudf_reads, "d", "month", file_type=zoned_type)
    np.testing.assert_array_equal(got, want)
    assert (got - START).tolist() == [1, 1, 6]  # Seoul's February 1st, June 30th 16:00 UTC is July 1st
    assert (frame_periods(as_cudf_reads, "d", "month") - START).tolist() == [0, 1, 5]  # the UTC months
    np.testing.assert_array_equal(frame_order(as_cudf_reads, got, zoned_type), order_within_period(zoned, want))


def test_decimal_prices_are_numbers(tmp_path: Path) -> None:
    from decimal import Decimal

    prices = pa.array([Decimal("100.50"), Decimal("120.25"), Decimal("130.00")], pa.decimal128(12, 2))
    table = pa.table({"p": [1, 1, 1], "date": ["2014-01", "2014-02", "2014-03"], "price": prices})
    source = SaleSource(str(write(tmp_path / "sales.parquet", table)), "auto", ["p"], "date", "price")
    frame, made = assert_same_reading(source, {})
    assert made.n_pairs == 2 and frame.price.tolist() == [100.5, 120.25, 130.0]


def test_a_sale_without_a_key_still_has_its_date_checked(tmp_path: Path) -> None:
    """As the host reader: every dated sale's period is made before the sales without a key are
    dropped, so an impossible date is refused even there."""
    days = np.array(["2014-01-05", "2014-02-05", "1700-01-01"], dtype="datetime64[D]")
    table = pa.table({"p": pa.array([1, 1, None], pa.int64()), "date": days, "price": [1.0, 2.0, 3.0]})
    source = SaleSource(str(write(tmp_path / "sales.parquet", table)), "auto", ["p"], "date", "price")
    for read in (source.read, lambda: source.read_frame(pd)):
        with pytest.raises(DataError, match="1700"):
            read()
