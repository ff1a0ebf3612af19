"""Sale records paired by DuckDB (io/sql_sales.py) against the pandas reference of
tests/sales_reference.py and against the array path (SaleSource + make_pairs + build_cell_table):
the same pairs, drop counts and cell tables, for both of its outputs (the pairs in memory, the
table alone); weekly periods; DuckDB's memory limit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sales_reference import (
    RULES,
    START,
    all_counts,
    assert_same_pairs,
    made_frame,
    random_sales,
    reference_pairs,
    write_sales,
)

import gpu_hpi
from gpu_hpi.data.cells import CellTable
from gpu_hpi.data.pair_filters import PairingRules
from gpu_hpi.data.pairing import make_pairs
from gpu_hpi.data.tabulate import build_cell_table
from gpu_hpi.errors import ConfigError, DataError
from gpu_hpi.io import sql_sales as sql_sales_module
from gpu_hpi.io.sales import SaleSource
from gpu_hpi.io.sql import Unsupported
from gpu_hpi.io.sql_sales import sql_sales

CPU = gpu_hpi.resolve_backend("cpu")


def source(path: Path, keys: list[str], group: str | None = "group", **kw: Any) -> SaleSource:
    return SaleSource(str(path), "auto", keys, "date", "price", group, **kw)


def array_path(
    src: SaleSource, rules: PairingRules, start: int | None, end: int | None
) -> tuple[int, Any, CellTable, dict[str, int]]:
    """(first, pairs, table, dropped) as app.load_sales.load_sales makes them without DuckDB."""
    raw = src.read()
    first = start if start is not None else int(raw.period.min())
    last = end if end is not None else int(raw.period.max())
    made = make_pairs(raw.to_sales(CPU, first, max(last - first + 1, 2)), rules, CPU)
    pairs = made.as_pairs()
    dropped = all_counts({"sale_missing_date": raw.n_missing_date}, raw.dropped, made.dropped)
    return first, pairs, build_cell_table(pairs, CPU), dropped


def assert_same_table(got: CellTable, want: CellTable) -> None:
    assert got.n_periods == want.n_periods
    assert got.dropped == want.dropped
    assert [str(g) for g in got.group_labels] == [str(g) for g in want.group_labels]
    for name in ("group", "prev", "recent", "count"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert set(got.sums) == set(want.sums)
    for name, values in want.sums.items():
        np.testing.assert_allclose(got.sums[name], values, rtol=1e-12, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("keys", [["a"], ["a", "b", "c"]], ids=["a", "abc"])
@pytest.mark.parametrize(
    "rules, batch", [(r, None) for r in RULES] + [(r, 7) for r in ("none", "robust_z", "all_filters")]
)
@pytest.mark.parametrize("pairing", ["consecutive", "all"])
def test_sql_pairs_match_the_reference_and_the_array_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pairing: str, rules: str, batch: int | None, keys: list[str]
) -> None:
    """batch 7: the sorted sales in batches of 7 (a property's sales span several, most batches end
    inside a property), the pairs reduced 16 at a time into tables that are summed."""
    if batch is not None:
        monkeypatch.setattr(sql_sales_module, "SORTED_BATCH", batch)
        monkeypatch.setattr(sql_sales_module, "TABLE_FOLD", 16)
    df = random_sales(200 + 7 * list(RULES).index(rules) + len(keys))
    path = write_sales(tmp_path, df, keys, row_group_size=700)
    options = PairingRules(pairing=pairing, **RULES[rules])
    start, end = START, START + 47
    want, want_dropped = reference_pairs(df, keys, START, 48, {"pairing": pairing, **RULES[rules]})
    src = source(path, keys)
    in_memory = sql_sales(src, options, start, end, keep_pairs=True)
    assert in_memory is not None and in_memory.pairs is not None
    assert in_memory.first == START and in_memory.n_sales == len(df)
    assert_same_pairs(made_frame(in_memory.pairs, START), want)
    assert in_memory.dropped == want_dropped
    assert in_memory.n_pairs == len(want) > 100
    _first, pairs, table, dropped = array_path(src, options, start, end)
    assert dropped == want_dropped
    assert_same_table(in_memory.table, table)
    # the table alone (the robust z filter needs the pairs: in memory anyway)
    alone = sql_sales(src, options, start, end, keep_pairs=False)
    assert alone is not None
    assert alone.dropped == want_dropped and alone.n_pairs == pairs.n_pairs
    assert list(alone.dropped) == list(in_memory.dropped) == list(dropped)  # the array path's order too
    assert (alone.pairs is None) == (options.max_robust_z is None)
    assert_same_table(alone.table, table)


@pytest.mark.parametrize("window", [(None, None), (START + 5, None), (None, START + 30)])
def test_window_from_the_data(tmp_path: Path, window: tuple[int | None, int | None]) -> None:
    df = random_sales(31)
    path = write_sales(tmp_path, df, ["a", "b"])
    src = source(path, ["a", "b"])
    first, _pairs, table, dropped = array_path(src, PairingRules(), *window)
    got = sql_sales(src, PairingRules(), *window, keep_pairs=False)
    assert got is not None and got.first == first
    assert got.dropped == dropped
    assert_same_table(got.table, table)


def test_ties_several_files_and_timestamps(tmp_path: Path) -> None:
    """Equal dates: the later row wins, the later file after the earlier; times of day order sales."""
    df = random_sales(32, null_dates=False)
    df["date"] = df["date"] + pd.to_timedelta(np.random.default_rng(1).integers(0, 3, len(df)), unit="h")
    folder = tmp_path / "parts"
    folder.mkdir()
    half = len(df) // 2
    write_sales(folder, df.iloc[:half], ["a"], "part-0.parquet")
    write_sales(folder, df.iloc[half:], ["a"], "part-1.parquet")
    src = SaleSource(str(folder), "parquet", ["a"], "date", "price", "group")
    _first, pairs, _table, dropped = array_path(src, PairingRules(), START, START + 47)
    got = sql_sales(src, PairingRules(), START, START + 47, keep_pairs=True)
    assert got is not None and got.pairs is not None
    assert got.dropped == dropped and got.dropped["sale_same_period_duplicate"] > 0
    assert_same_pairs(made_frame(got.pairs, START), made_frame(pairs, START))


@pytest.mark.parametrize("kind", ["month_strings", "date_strings", "integers", "dates"])
def test_date_column_types(tmp_path: Path, kind: str) -> None:
    df = random_sales(33, null_dates=False)
    months = df["date"].dt.year * 12 + df["date"].dt.month - 1
    date: pa.Array = {
        "month_strings": lambda: pa.array(df["date"].dt.strftime("%Y-%m").to_numpy(object)),
        "date_strings": lambda: pa.array(df["date"].dt.strftime("%Y-%m-%d").to_numpy(object)),
        "integers": lambda: pa.array((months - START).to_numpy(np.int64)),
        "dates": lambda: pa.array(df["date"].dt.date.to_numpy(object), pa.date32()),
    }[kind]()
    path = tmp_path / "sales.parquet"
    pq.write_table(pa.table({"a": pa.array(df["a"]), "date": date, "price": df["price"].to_numpy(float)}), path)
    src = SaleSource(str(path), "auto", ["a"], "date", "price", start="2014-01")
    first, pairs, _table, dropped = array_path(src, PairingRules(pairing="all"), None, None)
    got = sql_sales(src, PairingRules(pairing="all"), None, None, keep_pairs=True)
    assert got is not None and got.pairs is not None and got.first == first
    assert got.dropped == dropped
    assert_same_pairs(made_frame(got.pairs, first), made_frame(pairs, first))


def test_float_and_integer_keys_and_groups(tmp_path: Path) -> None:
    """A NaN in a float key part is a missing key, a NaN group a missing group, as in pandas."""
    rng = np.random.default_rng(4)
    n = 3000
    key = rng.integers(0, 400, n).astype(float)
    key[rng.random(n) < 0.05] = np.nan
    group = rng.integers(0, 4, n).astype(float)
    group[rng.random(n) < 0.05] = np.nan
    dates = (np.datetime64("2014-01", "M") + rng.integers(0, 24, n)).astype("datetime64[D]") + rng.integers(0, 28, n)
    table = pa.table({"k": key, "u": rng.integers(0, 2, n), "date": dates, "price": rng.uniform(1, 2, n), "g": group})
    path = tmp_path / "sales.parquet"
    pq.write_table(table, path)
    src = SaleSource(str(path), "auto", ["k", "u"], "date", "price", "g")
    _first, _pairs, want, dropped = array_path(src, PairingRules(max_annual_return=3.0), None, None)
    got = sql_sales(src, PairingRules(max_annual_return=3.0), None, None, keep_pairs=False)
    assert got is not None
    assert got.dropped == dropped and dropped["sale_missing_property"] > 0
    assert want.dropped.get("missing_group", 0) > 0
    assert_same_table(got.table, want)


def test_csv_and_refusals(tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text("p,date,price\n1,2014-01-05,100\n1,2014-03-01,120\n")
    with pytest.raises(Unsupported, match="not parquet"):
        sql_sales(SaleSource(str(csv), "auto", ["p"], "date", "price"), PairingRules(), None, None, False)
    empty = tmp_path / "empty.parquet"
    pq.write_table(
        pa.table(
            {"p": pa.array([], pa.int64()), "date": pa.array([], pa.date32()), "price": pa.array([], pa.float64())}
        ),
        empty,
    )
    with pytest.raises(DataError, match="holds no sales"):
        sql_sales(SaleSource(str(empty), "auto", ["p"], "date", "price"), PairingRules(), None, None, False)
    undated = tmp_path / "undated.parquet"
    pq.write_table(pa.table({"p": [1, 2], "date": pa.array([None, None], pa.date32()), "price": [1.0, 2.0]}), undated)
    with pytest.raises(DataError, match="none of the 2 sales"):
        sql_sales(SaleSource(str(undated), "auto", ["p"], "date", "price"), PairingRules(), None, None, False)
    with pytest.raises(DataError, match="'missing'"):
        sql_sales(SaleSource(str(undated), "auto", ["missing"], "date", "price"), PairingRules(), None, None, False)
    text_price = tmp_path / "text.parquet"
    pq.write_table(pa.table({"p": [1], "date": pa.array([0], pa.date32()), "price": ["x"]}), text_price)
    with pytest.raises(DataError, match="numeric"):
        sql_sales(SaleSource(str(text_price), "auto", ["p"], "date", "price"), PairingRules(), None, None, False)


def test_memory_limit_spills_and_gives_the_same_result(tmp_path: Path) -> None:
    """data.memory_limit: DuckDB keeps under it by spilling (to a private temporary directory, not
    the working directory); the pairs, counts and table are those of an unlimited run."""
    from gpu_hpi.io.pairs import PairSource
    from gpu_hpi.io.sql import _spill_directory
    from gpu_hpi.io.sql_pairs import sql_cell_table

    rng = np.random.default_rng(8)
    n = 400_000
    sales = pa.table(
        {
            "p": rng.integers(0, n // 3, n),
            "date": (np.datetime64("2014-01-01") + rng.integers(0, 3650, n)).astype("datetime64[D]"),
            "price": rng.uniform(1, 2, n),
            "g": rng.integers(0, 50, n),
        }
    )
    path = tmp_path / "sales.parquet"
    pq.write_table(sales, path)
    free = sql_sales(SaleSource(str(path), "auto", ["p"], "date", "price", "g"), PairingRules(), None, None, False)
    small = SaleSource(str(path), "auto", ["p"], "date", "price", "g", memory_limit="64MB")
    limited = sql_sales(small, PairingRules(), None, None, False)
    assert free is not None and limited is not None
    assert limited.dropped == free.dropped and limited.n_pairs == free.n_pairs > 0
    assert_same_table(limited.table, free.table)
    assert Path(_spill_directory()).name.startswith("gpu_hpi-duckdb-")
    assert not (Path.cwd() / ".tmp").exists()
    with pytest.raises(ConfigError, match=r"data\.memory_limit='banana'"):
        sql_sales(replace(small, memory_limit="banana"), PairingRules(), None, None, False)
    pairs = PairSource(
        str(tmp_path / "sales.parquet"), "auto", {"group": "g", "prev": "date", "recent": "p", "y": "price"}
    )
    with pytest.raises(ConfigError, match="memory_limit"):
        sql_cell_table(replace(pairs, memory_limit="banana"), None, None)


def test_out_of_memory_is_one_line_naming_the_option(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    n = 400_000
    days = (np.datetime64("2014-01-01") + rng.integers(0, 3650, n)).astype("datetime64[D]")
    pq.write_table(
        pa.table({"p": rng.integers(0, n // 3, n), "date": days, "price": rng.uniform(1, 2, n)}), tmp_path / "s.parquet"
    )
    source = SaleSource(str(tmp_path / "s.parquet"), "auto", ["p"], "date", "price", memory_limit="8MB")
    with pytest.raises(DataError, match=r"ran out of memory .*raise data\.memory_limit") as info:
        sql_sales(source, PairingRules(), None, None, False)
    assert "\n" not in str(info.value)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_absurd_prices_give_nonfinite_ratios_counted_alike(tmp_path: Path) -> None:
    """A price ratio that overflows (1e-300 then 1e14): y is infinite, dropped as nonfinite_y by
    the table in both paths (the grouped query then sums again with each y tested), counted, not
    warned of; a sale at a price no house has (1e300, whose square would overflow the price sums)
    is dropped before pairing (sale_invalid_price), whether the pairs keep their prices or not."""
    df = random_sales(35, null_dates=False)
    absurd = pd.DataFrame(
        {
            "a": pd.array([9999, 9999, 9998, 9998], dtype="Int64"),
            "b": ["x", "x", "y", "y"],
            "c": [1, 1, 2, 2],
            "date": pd.to_datetime(["2014-03-05", "2015-03-05", "2014-04-05", "2015-04-05"]),
            "price": [1e-300, 1e14, 1e5, 1e300],
            "group": ["north", "north", "north", "north"],
        }
    )
    clean = array_path(
        source(write_sales(tmp_path, df, ["a"], name="clean.parquet"), ["a"]), PairingRules(), START, START + 47
    )
    path = write_sales(tmp_path, pd.concat([df, absurd], ignore_index=True), ["a"])
    src = source(path, ["a"])
    _, _, table, dropped = array_path(src, PairingRules(), START, START + 47)
    assert table.dropped.get("nonfinite_y") == 1 and "absurd_price" not in table.dropped
    assert dropped["sale_invalid_price"] == clean[3].get("sale_invalid_price", 0) + 1
    for keep in (False, True):
        got = sql_sales(src, PairingRules(), START, START + 47, keep_pairs=keep)
        assert got is not None and got.dropped == dropped
        assert_same_table(got.table, table)


@pytest.mark.parametrize(
    "ids, labels",
    [
        (np.array([-0.0, 0.0, 1.0]), [0.0, 1.0]),  # one group 0: numpy's labels compare values, so must the codes
        (np.array([2**63 + 5, 7, 2**64 - 1], dtype=np.uint64), [7, 2**63 + 5, 2**64 - 1]),  # past int64
    ],
    ids=["negative-zero", "uint64-past-2^63"],
)
def test_group_ids_the_array_path_compares_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ids: np.ndarray, labels: list[Any]
) -> None:
    monkeypatch.setattr(sql_sales_module, "SORTED_BATCH", 3)
    rng = np.random.default_rng(14)
    n = 600
    dates = (np.datetime64("2014-01", "M") + rng.integers(0, 24, n)).astype("datetime64[D]")
    group = ids[rng.integers(0, len(ids), n)]
    table = pa.table({"p": rng.integers(0, 150, n), "date": dates, "price": rng.uniform(1, 2, n), "g": group})
    path = tmp_path / "sales.parquet"
    pq.write_table(table, path)
    src = SaleSource(str(path), "auto", ["p"], "date", "price", "g")
    _first, _pairs, want, dropped = array_path(src, PairingRules(), None, None)
    got = sql_sales(src, PairingRules(), None, None, keep_pairs=False)
    assert got is not None and got.dropped == dropped and "missing_group" not in got.table.dropped
    assert got.table.group_labels.tolist() == labels
    assert_same_table(got.table, want)


def test_sales_paired_by_weeks(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 6000
    sales = pd.DataFrame(
        {
            "p": rng.integers(0, 1500, n),
            "date": (np.datetime64("2014-01-01") + rng.integers(0, 400, n)).astype("datetime64[ns]"),
            "price": rng.uniform(1, 2, n),
        }
    )
    sales.to_parquet(tmp_path / "sales.parquet", index=False)
    source = SaleSource(str(tmp_path / "sales.parquet"), "auto", ["p"], "date", "price", periodicity="week")
    rules = PairingRules(periods_per_year=52, max_annual_return=50.0)
    got = sql_sales(source, rules, None, None, keep_pairs=True)
    raw = source.read()
    first, last = int(raw.period.min()), int(raw.period.max())
    made = make_pairs(
        raw.to_sales(gpu_hpi.resolve_backend("cpu"), first, last - first + 1), rules, gpu_hpi.resolve_backend("cpu")
    )
    assert got is not None and got.pairs is not None and got.first == first
    assert got.dropped["sale_same_period_duplicate"] == made.dropped["sale_same_period_duplicate"] > 0
    key = lambda a, b: sorted(zip(np.asarray(a).tolist(), np.asarray(b).tolist(), strict=True))  # noqa: E731
    assert key(got.pairs.prev, got.pairs.recent) == key(made.prev, made.recent)


def traced_frame(pairs: Any, first: int) -> pd.DataFrame:
    """Pairs with their trace (data.save_pairs' columns), one row per pair, sorted by their sales."""
    frame = pd.concat([made_frame(pairs, first), pairs.trace.to_pandas()], axis=1)
    columns = ["source_file_prev", "source_row_prev", "source_file_recent", "source_row_recent"]
    return frame.sort_values(columns, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("batch", [None, 7])
def test_traced_pairs_with_the_group_inside_the_key_equal_the_array_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int | None
) -> None:
    """The region (a, also a part of the key) as with a copy of it; traced pairs (files of several
    row groups, the sorted sales in batches of 7 where given) carry the array path's trace: the
    same sales by file and row, the dates in the files' type (DuckDB reads milliseconds as
    microseconds)."""
    if batch is not None:
        monkeypatch.setattr(sql_sales_module, "SORTED_BATCH", batch)
    df = random_sales(71).assign(a_copy=lambda d: d["a"])
    folder = tmp_path / "parts"
    folder.mkdir()
    for k, rows in enumerate(np.array_split(np.arange(len(df)), 2)):
        table = pa.Table.from_pandas(df.iloc[rows][["a", "a_copy", "b", "date", "price"]], preserve_index=False)
        table = table.set_column(table.schema.get_field_index("date"), "date", table["date"].cast(pa.timestamp("ms")))
        pq.write_table(table, folder / f"part-{k}.parquet", row_group_size=90)
    rules = PairingRules(pairing="all", max_annual_return=1.5, max_robust_z=3.0)
    inside = SaleSource(str(folder), "parquet", ["a", "b"], "date", "price", "a")
    copied = replace(inside, group="a_copy")
    got = sql_sales(inside, rules, START, START + 47, keep_pairs=True)
    want = sql_sales(copied, rules, START, START + 47, keep_pairs=True)
    assert got.pairs is not None and want.pairs is not None and got.dropped == want.dropped
    assert_same_pairs(made_frame(got.pairs, START), made_frame(want.pairs, START))
    assert_same_table(got.table, want.table)
    assert got.pairs.group_labels.size > 100  # a region per value of a

    traced = sql_sales(replace(inside, trace=True), rules, START, START + 47, keep_pairs=True)
    assert traced.pairs is not None and got.pairs is not None
    assert traced.dropped == got.dropped and traced.dropped["return_outlier"] > 0
    assert_same_table(traced.table, got.table)
    assert getattr(got.pairs, "trace", None) is None  # only where asked for
    sql = traced_frame(traced.pairs, START)
    raw = replace(inside, trace=True).read()
    made = make_pairs(raw.to_sales(CPU, START, 48), rules, CPU, trace=True)
    assert raw.trace is not None
    host = raw.trace.of_pairs(made.sale_prev, made.sale_recent)
    arrays = traced_frame(replace(made, trace=host), START)
    assert traced.pairs.trace.schema == host.schema
    assert host.schema.field("date_prev").type == pa.timestamp("ms")
    pd.testing.assert_frame_equal(sql, arrays, check_exact=False, rtol=1e-12)
    assert set(sql["source_file_prev"]) == {str(folder / "part-0.parquet"), str(folder / "part-1.parquet")}
    assert sql["source_row_prev"].max() > 90 and len(sql) > 500


def test_transaction_columns_share_only_the_group_and_the_key(tmp_path: Path) -> None:
    path = write_sales(tmp_path, random_sales(72), ["a", "b"])
    for prop, date, price, group, said in (
        (["a"], "date", "date", None, "'date' is both the date and the price"),
        (["a", "date"], "date", "price", None, "'date' is both the property and the date"),
        (["a"], "date", "price", "price", "'price' is both the price and the group"),
    ):
        with pytest.raises(ConfigError, match=said):
            sql_sales(SaleSource(str(path), "auto", prop, date, price, group), PairingRules(), None, None, False)
    with pytest.raises(ConfigError, match="'a' appears twice in the property key"):
        sql_sales(SaleSource(str(path), "auto", ["a", "a"], "date", "price"), PairingRules(), None, None, False)
