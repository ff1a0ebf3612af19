"""Sale records on the device (io/device_sales.py: read and paired by libcudf's operations) run on the
stand-in of pylibcudf (tests/fake_pylibcudf.py) against the host reader and make_pairs: the same
sale pairs and drop counts, the same refusals. tests/gpu/test_gpu.py runs the same code on
pylibcudf."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from helpers import write
from sales_reference import START, all_counts, assert_same_pairs, made_frame, random_sales, reference_pairs

import gpu_hpi
from gpu_hpi.data.pair_filters import PairingRules
from gpu_hpi.data.pairing import make_pairs
from gpu_hpi.errors import DataError
from gpu_hpi.io import device
from gpu_hpi.io.device_sales import pair_sales, read_sales
from gpu_hpi.io.pairs import PairSource
from gpu_hpi.io.sales import SaleSource

CPU = gpu_hpi.resolve_backend("cpu")


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


@pytest.mark.parametrize("pairing", ["consecutive", "all"])
def test_traced_pairs_and_the_group_inside_the_key_equal_the_host(
    ops: device.Ops, tmp_path: Path, pairing: str
) -> None:
    """The region (a, also a part of the key) as with a copy of it; traced pairs (several files of
    several row groups, sales without a date or a key among them) carry the host path's trace: the
    same sales by file and row, the key and the dates in the files' types."""
    df = random_sales(48).assign(a_copy=lambda d: d["a"])
    folder = tmp_path / "parts"
    folder.mkdir()
    for k, rows in enumerate(np.array_split(np.arange(len(df)), 3)):
        table = pa.Table.from_pandas(df.iloc[rows][["a", "a_copy", "b", "date", "price"]], preserve_index=False)
        write(folder / f"part-{k}.parquet", table, row_group_size=80)
    options = {"pairing": pairing, "max_annual_return": 1.5, "max_robust_z": 3.0}
    inside = SaleSource(str(folder), "parquet", ["a", "b"], "date", "price", "a")
    read, made = assert_same_sales(ops, inside, options)
    assert read.trace is None and made.trace is None  # only where asked for
    _, copied = device_pairs(ops, replace(inside, group="a_copy"), options)
    assert made.dropped == copied.dropped and made.dropped["return_outlier"] > 0
    assert_same_pairs(made_frame(made, START), made_frame(copied, START))

    traced = replace(inside, trace=True)
    read, made = assert_same_sales(ops, traced, options)
    assert read.dropped["sale_missing_property"] > 0 and read.n_missing_date > 0
    raw = traced.read()
    assert raw.trace is not None
    host = make_pairs(raw.to_sales(CPU, START, 48), PairingRules(**options), CPU, trace=True)
    want = raw.trace.of_pairs(host.sale_prev, host.sale_recent)
    assert made.trace.schema == want.schema and made.trace.num_rows == made.n_pairs > 300
    order = ["source_file_prev", "source_row_prev", "source_file_recent", "source_row_recent"]

    def traced_frame(pairs: Any, trace: pa.Table) -> pd.DataFrame:
        frame = pd.concat([made_frame(pairs, START), trace.to_pandas()], axis=1)
        return frame.sort_values(order, kind="stable").reset_index(drop=True)

    pd.testing.assert_frame_equal(traced_frame(made, made.trace), traced_frame(host, want))
    assert made.trace.column("source_row_recent").to_numpy().max() > 80
