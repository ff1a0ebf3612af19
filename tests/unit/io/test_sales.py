"""Readers of raw sale records (io/sales.py: SaleSource) on parquet and CSV files, their sales paired
by make_pairs against the pandas reference of tests/sales_reference.py; composite property keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sales_reference import (
    START,
    all_counts,
    assert_same_pairs,
    made_frame,
    random_sales,
    reference_pairs,
    sort_pairs,
)

from gpu_hpi import resolve_backend
from gpu_hpi.data.pair_filters import PairingRules
from gpu_hpi.data.pairing import make_pairs
from gpu_hpi.errors import ConfigError
from gpu_hpi.io.sales import SaleSource, _composite_codes

CPU = resolve_backend("cpu")


def test_composite_codes_distinguish_combinations_and_nulls() -> None:
    a = pa.chunked_array([pa.array([1, 1, 2, 2, None, 1]), pa.array([2, 1])])
    b = pa.chunked_array([pa.array(["x", "y", "x", "x", "x", None]), pa.array(["x", "x"])])
    c = pa.chunked_array([pa.array([1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 2.5])])
    codes = _composite_codes([a, b, c])
    assert (codes[[4, 5]] == -1).all()
    valid = codes[[0, 1, 2, 3, 6, 7]]
    # (1,x,1.5) (1,y,1.5) (2,x,1.5) (2,x,1.5) (2,x,1.5) (1,x,2.5)
    assert valid[2] == valid[3] == valid[4]
    assert len({valid[0], valid[1], valid[2], valid[5]}) == 4
    assert codes.dtype == np.int64


def test_composite_codes_large_integer_ids_with_a_null() -> None:
    col = pa.chunked_array([pa.array([2**60, 2**60 + 1, None], type=pa.int64())])
    codes = _composite_codes([col])
    assert codes[0] != codes[1] and codes[2] == -1


def _read_and_pair(path: Path, keys: list[str], first: int, n_periods: int, options: dict[str, Any], **kw: Any) -> Any:
    source = SaleSource(path=str(path), format="auto", property=keys, date="date", price="price", **kw)
    raw = source.read()
    made = make_pairs(raw.to_sales(CPU, first, n_periods), PairingRules(**options), CPU)
    return raw, made


@pytest.mark.parametrize("pairing", ["consecutive", "all"])
def test_sale_source_parquet_timestamps_composite_key(tmp_path: Path, pairing: str) -> None:
    df = random_sales(21)
    keys = ["a", "b", "c"]
    # times of day too: the last sale of a period is the latest timestamp, not only the latest day
    df["date"] = df["date"] + pd.to_timedelta(np.random.default_rng(0).integers(0, 86400, len(df)), unit="s")
    path = tmp_path / "sales.parquet"
    table = pa.Table.from_pandas(df[[*keys, "date", "price", "group"]], preserve_index=False)
    pq.write_table(table, path, row_group_size=500)
    first, n_periods = START + 2, 40  # a window inside the data
    options = {"pairing": pairing, "max_annual_return": 1.5, "max_robust_z": 3.0}
    raw, made = _read_and_pair(path, keys, first, n_periods, options, group="group", batch_rows=700)
    want, want_dropped = reference_pairs(df, keys, first, n_periods, options)
    assert raw.n_sales == len(df)
    assert raw.n_missing_date == want_dropped["sale_missing_date"]
    assert raw.dropped == {"sale_missing_property": want_dropped["sale_missing_property"]}
    assert all_counts(raw.dropped, {"sale_missing_date": raw.n_missing_date}, made.dropped) == want_dropped
    assert_same_pairs(made_frame(made, first), want)


def test_sale_source_csv_dates_and_month_strings(tmp_path: Path) -> None:
    """CSV: 'YYYY-MM-DD' dates order sales by day; 'YYYY-MM' strings by row within a month."""
    df = random_sales(22, null_groups=False, null_dates=False)
    df["b"] = df["b"].fillna("nb")  # CSV strings are never null
    keys = ["a", "b"]
    options = {"pairing": "consecutive"}
    path = tmp_path / "sales.csv"
    out = df[[*keys, "date", "price", "group"]].copy()
    out["date"] = df["date"].dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False, float_format="%.17g")
    raw, made = _read_and_pair(path, keys, START, 48, options, group="group")
    want, want_dropped = reference_pairs(df, keys, START, 48, options)
    assert all_counts(raw.dropped, made.dropped) == want_dropped
    assert_same_pairs(made_frame(made, START), want)

    out["date"] = df["date"].dt.strftime("%Y-%m")
    out.to_csv(path, index=False, float_format="%.17g")
    raw, made = _read_and_pair(path, keys, START, 48, options, group="group")
    by_row, by_row_dropped = reference_pairs(df.assign(day=0), keys, START, 48, options, when="day")
    assert all_counts(raw.dropped, made.dropped) == by_row_dropped == want_dropped
    assert_same_pairs(made_frame(made, START), by_row)
    assert not sort_pairs(by_row).equals(sort_pairs(want))  # the days do change which sale is kept


def _month_string_table(df: pd.DataFrame, keys: list[str], date_type: pa.DataType) -> pa.Table:
    return pa.table(
        {
            **{k: pa.array(df[k]) for k in keys},
            "date": pa.array(df["date"].dt.strftime("%Y-%m").to_numpy(object), type=date_type),
            "price": pa.array(df["price"].to_numpy(float)),
        }
    )


def test_sale_source_parquet_month_strings(tmp_path: Path) -> None:
    df = random_sales(23, null_dates=False)
    keys = ["a", "b"]
    path = tmp_path / "sales.parquet"
    pq.write_table(_month_string_table(df, keys, pa.string()), path)
    raw, made = _read_and_pair(path, keys, START, 48, {"pairing": "all"})
    want, want_dropped = reference_pairs(df.assign(day=0), keys, START, 48, {"pairing": "all"}, when="day", group=None)
    assert all_counts(raw.dropped, made.dropped) == want_dropped
    assert_same_pairs(made_frame(made, START), want)


def test_sale_source_parquet_large_string_months(tmp_path: Path) -> None:
    df = random_sales(24, null_dates=False)
    path = tmp_path / "sales.parquet"
    pq.write_table(_month_string_table(df, ["a"], pa.large_string()), path)
    _, made = _read_and_pair(path, ["a"], START, 48, {})
    want, _ = reference_pairs(df.assign(day=0), ["a"], START, 48, {}, when="day", group=None)
    assert_same_pairs(made_frame(made, START), want)


def test_sale_source_parquet_date_strings_use_days(tmp_path: Path) -> None:
    frame = pd.DataFrame({"p": [1, 1, 1], "date": ["2014-01-20", "2014-01-05", "2014-03-01"], "price": [2.0, 1.0, 4.0]})
    path = tmp_path / "sales.parquet"
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False).cast(
            pa.schema([("p", pa.int64()), ("date", pa.string()), ("price", pa.float64())])
        ),
        path,
    )
    _, made = _read_and_pair(path, ["p"], START, 3, {})
    assert made.price_prev.tolist() == [2.0]  # 2014-01-20 is the later sale of January


def test_sale_source_nanosecond_timestamps(tmp_path: Path) -> None:
    dates = np.array(["2014-01-05T00:00:00.000000001", "2014-01-03", "2014-02-01"], dtype="datetime64[ns]")
    path = tmp_path / "sales.parquet"
    pq.write_table(pa.table({"p": [1, 1, 1], "date": pa.array(dates), "price": [2.0, 1.0, 4.0]}), path)
    _, made = _read_and_pair(path, ["p"], START, 2, {})
    assert made.price_prev.tolist() == [2.0]


def test_sale_source_csv_empty_month_string_is_a_missing_date(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    path.write_text("p,date,price\n1,2014-01,100\n1,,120\n1,2014-03,130\n")
    raw, made = _read_and_pair(path, ["p"], START, 3, {})
    assert raw.n_missing_date == 1 and made.n_pairs == 1


def test_sale_source_integer_periods(tmp_path: Path) -> None:
    frame = pd.DataFrame({"p": [1, 1, 2, 2, 1], "date": [0, 5, 2, 2, 9], "price": [1.0, 2.0, 3.0, 6.0, 8.0]})
    path = tmp_path / "sales.parquet"
    frame.to_parquet(path, index=False)
    source = SaleSource(path=str(path), format="auto", property=["p"], date="date", price="price", start="2014-01")
    raw = source.read()
    np.testing.assert_array_equal(raw.period, START + frame["date"].to_numpy())
    made = make_pairs(raw.to_sales(CPU, START, 10), PairingRules(), CPU)
    assert sorted(zip(made.prev.tolist(), made.recent.tolist(), strict=True)) == [(0, 5), (5, 9)]
    assert made.dropped == {"sale_same_period_duplicate": 1}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_traced_sales_name_their_file_and_row(tmp_path: Path, fmt: str) -> None:
    """Each sale read (dated, keyed) names its file and 0-based row: parquet files of several row
    groups read in batches that cut them, or a CSV file (rows after the header, empty dates
    among them); its key, date and price are those of that row."""
    df = random_sales(25, bad_prices=False)
    keys = ["a", "b"]
    frame = df[[*keys, "date", "price"]]
    if fmt == "csv":
        path = tmp_path / "sales.csv"
        frame.assign(date=df["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False, float_format="%.17g")
        parts = {str(path): pacsv.read_csv(path).to_pandas(types_mapper=pd.ArrowDtype)}
        where = str(path)
    else:
        (tmp_path / "parts").mkdir()
        parts = {}
        for k, rows in enumerate(np.array_split(np.arange(len(df)), 3)):
            path = tmp_path / "parts" / f"part-{k}.parquet"
            pq.write_table(pa.Table.from_pandas(frame.iloc[rows], preserve_index=False), path, row_group_size=120)
            parts[str(path)] = pq.read_table(path).to_pandas(types_mapper=pd.ArrowDtype)
        where = str(tmp_path / "parts")
    source = SaleSource(where, "auto", keys, "date", "price", batch_rows=100, trace=True)
    raw = source.read()
    assert raw.trace is not None and SaleSource(where, "auto", keys, "date", "price").read().trace is None
    trace = raw.trace
    assert trace.files == list(parts) and len(trace.row) == raw.price.size > 1000
    rows = pd.concat([parts[trace.files[f]].iloc[[r]] for f, r in zip(trace.file, trace.row, strict=True)])
    np.testing.assert_array_equal(rows["price"].to_numpy(float), raw.price)
    assert (pd.to_datetime(rows["date"]).to_numpy() == pd.to_datetime(trace.date.to_pandas()).to_numpy()).all()
    for key in keys:
        assert rows[key].tolist() == trace.keys[key].to_pylist(), key
    assert len(set(trace.file.tolist())) == len(parts) and trace.row.max() > 120


def test_the_group_may_be_part_of_the_key(tmp_path: Path) -> None:
    """The region inside the property key: read once, the same pairs as with a copy of it."""
    df = random_sales(26).assign(a_copy=lambda d: d["a"])
    path = tmp_path / "sales.parquet"
    pq.write_table(pa.Table.from_pandas(df[["a", "a_copy", "b", "date", "price"]], preserve_index=False), path)
    inside = SaleSource(str(path), "auto", ["a", "b"], "date", "price", "a")
    assert inside.columns() == ["a", "b", "date", "price"]
    made = {}
    for group in ("a", "a_copy"):
        raw = SaleSource(str(path), "auto", ["a", "b"], "date", "price", group).read()
        made[group] = make_pairs(raw.to_sales(CPU, START, 48), PairingRules(max_robust_z=2.5), CPU)
    assert made["a"].dropped == made["a_copy"].dropped and made["a"].n_pairs > 300
    assert_same_pairs(made_frame(made["a"], START), made_frame(made["a_copy"], START))
    with pytest.raises(ConfigError, match="'date' is both the date and the price"):
        SaleSource(str(path), "auto", ["a"], "date", "date").read()
