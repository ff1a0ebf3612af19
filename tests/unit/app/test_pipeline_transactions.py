"""The job on sale records (data=transactions): the index of a run on the sales equals the index of a
run on the reference's pairs (tests/sales_reference.py) written as a pair file; DuckDB's pairing
and the array path give the same run; saved pairs, traced back to their sales on every reader; a
region code inside the property key; refusals."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_frames_equal, compose_config, q, run_app
from sales_reference import (
    SEED_COLUMNS,
    START,
    assert_same_pairs,
    random_sales,
    reference_pairs,
    write_sales,
)

import gpu_hpi
from gpu_hpi.io._sale_batches import SOURCE_COLUMNS


def reference_seed_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """Reference pairs in the seed schema plus prices (periods as the month's first day)."""

    def firsts(m: pd.Series) -> pd.Series:
        m = m.to_numpy(np.int64)
        return pd.to_datetime(pd.DataFrame({"year": m // 12, "month": m % 12 + 1, "day": 1}))

    return pd.DataFrame(
        {
            "group_id": pairs["group"].astype(object),
            "PrevYearMonth": firsts(pairs["prev"]),
            "RecentYearMonth": firsts(pairs["recent"]),
            "LogPriceDiff": pairs["y"].to_numpy(float),
            "PrevPrice": pairs["price_prev"].to_numpy(float),
            "RecentPrice": pairs["price_recent"].to_numpy(float),
        }
    )


def seed_to_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """A seed-schema frame back to the reference's columns (asserting first-of-month periods)."""
    for col in ("PrevYearMonth", "RecentYearMonth"):
        assert (frame[col].dt.day == 1).all() and (frame[col].dt.hour == 0).all()

    def months(col: str) -> np.ndarray:
        return (frame[col].dt.year * 12 + frame[col].dt.month - 1).to_numpy(np.int64)

    return pd.DataFrame(
        {
            "group": frame["group_id"].astype(object).to_numpy(),
            "prev": months("PrevYearMonth"),
            "recent": months("RecentYearMonth"),
            "price_prev": frame["PrevPrice"].to_numpy(float),
            "price_recent": frame["RecentPrice"].to_numpy(float),
            "y": frame["LogPriceDiff"].to_numpy(float),
        }
    )


E2E_RULES = {"min_holding": 2, "max_holding": 40, "max_annual_return": 1.5, "max_robust_z": 4.0}
E2E_WINDOW = ("2014-02", "2017-10")  # months 1..45 of the data
E2E_FIRST, E2E_N = START + 1, 45


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A transactions parquet (string composite key column, no null groups) and its reference pairs."""
    tmp = tmp_path_factory.mktemp("e2e")
    df = random_sales(31, n_props=1500, null_groups=False)
    sales = df[["a", "b", "date", "price", "group"]].rename(columns={"a": "complex", "b": "unit", "group": "region"})
    path = tmp / "sales.parquet"
    sales.to_parquet(path, index=False)
    out: dict[str, Any] = {"tmp": tmp, "path": path, "df": df}
    for pairing in ("consecutive", "all"):
        pairs, dropped = reference_pairs(df, ["a", "b"], E2E_FIRST, E2E_N, {"pairing": pairing, **E2E_RULES})
        ref = tmp / f"reference_{pairing}.parquet"
        reference_seed_pairs(pairs).to_parquet(ref, index=False)
        out[pairing] = (pairs, dropped, ref)
    return out


def tx_args(e2e: dict[str, Any], *more: str) -> list[str]:
    rules = [f"data.{k}={v}" for k, v in E2E_RULES.items()]
    return [
        "data=transactions",
        f"data.path={q(e2e['path'])}",
        "data.columns.property=[complex,unit]",
        "data.columns.group=region",
        f"data.start={E2E_WINDOW[0]}",
        f"data.end={E2E_WINDOW[1]}",
        *rules,
        *more,
    ]


def pairs_args(path: Path, *more: str, window: tuple[str, str] = E2E_WINDOW) -> list[str]:
    return [
        "data=pairs",
        f"data.path={q(path)}",
        "data.columns.price_prev=PrevPrice",
        "data.columns.price_recent=RecentPrice",
        f"data.start={window[0]}",
        f"data.end={window[1]}",
        *more,
    ]


def test_cli_transactions_equal_pairs_of_the_reference(e2e: dict[str, Any]) -> None:
    tmp = e2e["tmp"]
    pairs, dropped, ref = e2e["consecutive"]
    saved = tmp / "out" / "saved_pairs.parquet"
    tx = run_app(tmp, *tx_args(e2e, f"data.save_pairs={q(saved)}"), name="tx").ok()
    via_pairs = run_app(tmp, *pairs_args(ref), name="pairs").ok()
    assert_frames_equal(tx.frame, via_pairs.frame, atol=1e-10)
    assert np.isfinite(tx.frame["log_index"]).sum() > 100

    got = pd.read_parquet(saved)
    assert list(got.columns) == [*SEED_COLUMNS, "complex", "unit", "date_prev", "date_recent", *SOURCE_COLUMNS]
    assert_same_pairs(seed_to_pairs(got), pairs)

    s = tx.summary
    filtered = sum(v for k, v in dropped.items() if not k.startswith("sale_"))
    assert s["n_sales_read"] == len(e2e["df"])
    # made by the pairing = kept + dropped by the pair filters; every pair read is one made
    assert s["n_pairs_made"] == len(pairs) + filtered == s["n_pairs_read"]
    assert s["pairing"] == "consecutive"
    assert s["dropped"] == dropped
    for reason in (
        "sale_missing_date",
        "sale_missing_property",
        "sale_invalid_price",
        "sale_outside_window",
        "sale_same_period_duplicate",
        "holding_too_short",
        "holding_too_long",
        "extreme_return",
        "return_outlier",
    ):
        assert s["dropped"].get(reason, 0) > 0, reason
    assert s["n_pairs_used"] == via_pairs.summary["n_pairs_used"] == len(pairs)
    assert (s["first_period"], s["last_period"]) == E2E_WINDOW
    assert "dropped:" in tx.stdout and "return_outlier" in tx.stdout


def test_cli_transactions_all_pairing_and_arithmetic(e2e: dict[str, Any]) -> None:
    tmp = e2e["tmp"]
    pairs, dropped, ref = e2e["all"]
    cons_pairs = e2e["consecutive"][0]
    assert len(pairs) > len(cons_pairs)
    tx = run_app(tmp, *tx_args(e2e, "data.pairing=all", "method=arithmetic"), name="tx_all").ok()
    via_pairs = run_app(tmp, *pairs_args(ref, "method=arithmetic"), name="pairs_all").ok()
    assert_frames_equal(tx.frame, via_pairs.frame, atol=1e-10)
    s = tx.summary
    assert s["pairing"] == "all" and s["method"] == "arithmetic"
    assert s["n_pairs_made"] == len(pairs) + sum(v for k, v in dropped.items() if not k.startswith("sale_"))
    assert s["dropped"] == dropped and s["n_pairs_read"] == s["n_pairs_made"]

    cons = run_app(tmp, *tx_args(e2e, "method=arithmetic"), name="tx_cons_arith").ok()
    cons_filtered = sum(v for k, v in e2e["consecutive"][1].items() if not k.startswith("sale_"))
    assert cons.summary["n_pairs_made"] == len(cons_pairs) + cons_filtered
    a = cons.frame["log_index"].to_numpy(float)
    b = tx.frame["log_index"].to_numpy(float)
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 100 and np.abs(a[both] - b[both]).max() > 1e-6


def test_cli_transactions_csv_single_key_without_groups(tmp_path: Path) -> None:
    df = random_sales(32, n_props=600, null_groups=False, null_keys=False, null_dates=False, bad_prices=False)
    df["pid"] = df.groupby(["a", "b", "c"], sort=False).ngroup()
    path = tmp_path / "sales.csv"
    frame = pd.DataFrame({"pid": df["pid"], "date": df["date"].dt.strftime("%Y-%m-%d"), "price": df["price"]})
    frame.to_csv(path, index=False, float_format="%.17g")
    first = int((df["date"].dt.year * 12 + df["date"].dt.month - 1).min())
    last = int((df["date"].dt.year * 12 + df["date"].dt.month - 1).max())
    pairs, dropped = reference_pairs(df, ["pid"], first, last - first + 1, {}, group=None)
    run = run_app(
        tmp_path, "data=transactions", f"data.path={q(path)}", "data.columns.property=pid", "data.columns.group=null"
    ).ok()
    s = run.summary
    assert s["n_pairs_made"] == len(pairs) and s["dropped"] == dropped
    assert list(dropped) == ["sale_same_period_duplicate"]
    assert sorted(run.frame["group"].unique()) == ["ALL"]
    # the window is inferred from the sales' dates
    labels = [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in (first, last)]
    assert [s["first_period"], s["last_period"]] == labels
    ref = tmp_path / "reference.parquet"
    reference_seed_pairs(pairs.assign(group="ALL")).drop(columns="group_id").to_parquet(ref, index=False)
    via_pairs = run_app(
        tmp_path, *pairs_args(ref, "data.columns.group=null", window=(labels[0], labels[1])), name="pairs"
    ).ok()
    assert_frames_equal(run.frame, via_pairs.frame, atol=1e-10)


def test_a_price_no_house_has_is_dropped_whatever_the_method(tmp_path: Path) -> None:
    """Sales above 10^15 made pairs under bmn (whose table keeps no prices: the pair rule
    absurd_price saw none) and were dropped under arithmetic: the same sales, other pairs."""
    df = random_sales(33, n_props=400, null_groups=False, null_keys=False, null_dates=False, bad_prices=False)
    df.loc[:9, "price"] = 1e16
    path = write_sales(tmp_path, df, ["a", "b", "c"])
    runs = {
        method: run_app(
            tmp_path,
            "data=transactions",
            f"data.path={q(path)}",
            "data.columns.property=[a,b,c]",
            "data.columns.group=group",
            f"method={method}",
            name=method,
        )
        .ok()
        .summary
        for method in ("bmn", "arithmetic")
    }
    assert runs["bmn"]["dropped"] == runs["arithmetic"]["dropped"]
    assert runs["bmn"]["n_pairs_used"] == runs["arithmetic"]["n_pairs_used"]
    assert runs["bmn"]["dropped"]["sale_invalid_price"] == 10 and "absurd_price" not in runs["bmn"]["dropped"]


def test_cli_save_pairs_keeps_missing_groups_missing(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "pid": [1, 1, 2, 2],
            "date": pd.to_datetime(["2014-01-03", "2014-05-03", "2014-01-10", "2014-06-03"]),
            "price": [100.0, 110.0, 200.0, 190.0],
            "group_id": ["north", None, "south", "south"],
        }
    )
    path = tmp_path / "sales.parquet"
    frame.to_parquet(path, index=False)
    saved = tmp_path / "pairs.parquet"
    run_app(
        tmp_path,
        "data=transactions",
        f"data.path={q(path)}",
        "data.columns.property=pid",
        f"data.save_pairs={q(saved)}",
        "index.min_pairs=1",
    ).ok()
    got = pd.read_parquet(saved).sort_values("RecentYearMonth")
    assert got["group_id"].isna().tolist() == [True, False]
    assert got["pid"].tolist() == [1, 2] and got["source_row_prev"].tolist() == [0, 2]


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_a_key_column_named_as_a_saved_column_gets_a_prefix(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "group_id": ["11110", "11110", "26110", "26110"],
            "date_prev": [7, 7, 7, 7],  # as the saved pairs name their earlier date
            "date": pd.to_datetime(["2014-01-03", "2014-05-03", "2014-01-10", "2014-06-03"]),
            "price": [100.0, 110.0, 200.0, 190.0],
        }
    )
    path = tmp_path / "sales.parquet"
    frame.to_parquet(path, index=False)
    saved = tmp_path / "pairs.parquet"
    run = run_app(
        tmp_path,
        "data=transactions",
        f"data.path={q(path)}",
        "data.columns.property=[group_id,date_prev]",
        f"data.save_pairs={q(saved)}",
        "index.min_pairs=1",
    ).ok()
    got = pd.read_parquet(saved).sort_values("source_row_prev")
    traced = ["property_group_id", "property_date_prev", "date_prev", "date_recent", *SOURCE_COLUMNS]
    assert list(got.columns) == [*SEED_COLUMNS, *traced]
    assert got["property_group_id"].tolist() == got["group_id"].tolist() == ["11110", "26110"]
    assert got["date_recent"].tolist() == list(pd.to_datetime(["2014-05-03", "2014-06-03"]))
    assert got["date_prev"].tolist() == list(pd.to_datetime(["2014-01-03", "2014-01-10"]))
    assert got["property_date_prev"].tolist() == [7, 7]
    assert run.summary["n_pairs_made"] == 2


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_dictionary_dates_keep_the_latest_sale_of_a_period(tmp_path: Path) -> None:
    sales = pd.DataFrame(
        {
            "property_id": [1, 1, 1],
            "date": ["2014-01-20", "2014-01-05", "2014-03-01"],
            "price": [200.0, 150.0, 400.0],
        }
    )
    plain, categorical = tmp_path / "plain.parquet", tmp_path / "categorical.parquet"
    sales.to_parquet(plain, index=False)
    table = pa.table(
        {
            "property_id": pa.array([1, 1, 1]),
            "date": pa.array(sales["date"]).dictionary_encode(),
            "price": pa.array(sales["price"]),
        }
    )
    pq.write_table(table, categorical)
    common = ["data=transactions", "data.columns.group=null", "index.min_pairs=1", "diagnostics.revision=false"]
    for path, name in ((plain, "plain"), (categorical, "categorical")):
        run = run_app(
            tmp_path, *common, f"data.path={path}", f"data.save_pairs={tmp_path / name}-pairs.parquet", name=name
        )
        run.ok()
        saved = pd.read_parquet(tmp_path / f"{name}-pairs.parquet")
        assert saved[["PrevPrice", "RecentPrice"]].values.tolist() == [[200.0, 400.0]], name


@pytest.mark.parametrize(
    "overrides",
    [
        ["method=bmn"],
        ["method=arithmetic", "output.cells=true"],
        ["method=robust", "data.max_robust_z=3.0"],
        ["method=case_shiller", "data.pairing=all", "data.max_holding=30", "data.save_pairs=SAVE"],
    ],
    ids=["bmn", "arithmetic", "robust", "case_shiller_all"],
)
def test_pipeline_same_run_with_and_without_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str]
) -> None:
    from gpu_hpi.app import load_sales, pipeline

    df = random_sales(34, n_props=1500)
    path = write_sales(tmp_path, df, ["a", "b"])
    common = [
        "backend=cpu",
        "data=transactions",
        f"data.path={path}",
        "data.columns.property=[a,b]",
        "data.columns.group=group",
        "data.start=2014-01",
        "data.max_annual_return=2.0",
        "index.min_pairs=1",
        "output.plot=false",
        "diagnostics.revision=false",
    ]
    runs = {}
    for engine in ("duckdb", "arrays"):
        out = tmp_path / engine
        extra = [o.replace("SAVE", str(tmp_path / f"{engine}-pairs.parquet")) for o in overrides]
        cfg = compose_config(*common, *extra)
        with monkeypatch.context() as patch:
            if engine == "arrays":
                patch.setattr(load_sales, "sql_sales", declined)
            runs[engine] = (pipeline.run(cfg, out), pd.read_csv(out / "index.csv"))
    (got, got_index), (want, want_index) = runs["duckdb"], runs["arrays"]
    for key in ("dropped", "n_sales_read", "n_pairs_made", "n_pairs_used", "first_period", "n_periods"):
        assert got[key] == want[key], key
    assert got["dropped"]["sale_same_period_duplicate"] > 0 and got["dropped"]["extreme_return"] > 0
    assert list(got_index.columns) == list(want_index.columns)
    for col in got_index.columns:
        if got_index[col].dtype.kind == "f":
            np.testing.assert_allclose(got_index[col], want_index[col], rtol=1e-9, atol=1e-12, err_msg=col)
        else:
            assert got_index[col].tolist() == want_index[col].tolist(), col
    if "data.save_pairs=SAVE" in overrides:
        saved = [pd.read_parquet(tmp_path / f"{e}-pairs.parquet") for e in ("duckdb", "arrays")]
        key = list(saved[0].columns)
        assert_frame_sorted_equal(saved[0], saved[1], key)


def assert_frame_sorted_equal(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> None:
    got = got.sort_values(columns, kind="stable").reset_index(drop=True)
    want = want.sort_values(columns, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_cli_transactions_missing_column_is_one_line_error(e2e: dict[str, Any]) -> None:
    run = run_app(e2e["tmp"], *tx_args(e2e, "data.columns.price=sale_amount"), name="missing_column")
    line = run.assert_failed("sale_amount")
    assert "complex" in line.split("sale_amount", 1)[1]  # the columns found are listed


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_transactions_without_any_dated_sale(tmp_path: Path) -> None:
    path = tmp_path / "sales.parquet"
    pq.write_table(
        pa.table(
            {
                "property_id": pa.array([1, 2]),
                "date": pa.array([None, None], type=pa.timestamp("ns")),
                "price": pa.array([1.0, 2.0]),
            }
        ),
        path,
    )
    run = run_app(tmp_path, "data=transactions", f"data.path={path}", "data.columns.group=null")
    run.assert_failed("sales")


def declined(*args: Any, **kwargs: Any) -> Any:
    """DuckDB's reader declining the sale records, as for a date column pyarrow must read."""
    from gpu_hpi.io.sql import Unsupported

    raise Unsupported("left to the array path")


# --------------------------------------------------------------------------------------------------
# data.save_pairs traced back to the sales; the region code inside the property key

KOREAN_KEY = ["district", "dong", "b", "c"]


def korean_sales(seed: int, **kw: Any) -> pd.DataFrame:
    """random_sales with its key `a` as (district, dong): district codes as text, dong numbers that
    repeat across districts (a = 3 dong + district), and a copy of the district column."""
    df = random_sales(seed, n_props=600, **kw)
    codes = np.asarray(["11110", "11140", "26110"], dtype=object)
    a = df["a"]
    df["district"] = pd.Series(codes[a.fillna(0).to_numpy(np.int64) % 3], dtype=object).where(a.notna(), None)
    df["dong"] = a // 3
    df["district_copy"] = df["district"]
    return df


def write_korean(tmp_path: Path, df: pd.DataFrame, fmt: str) -> tuple[str, dict[str, pd.DataFrame]]:
    """The sales as three parquet files of several row groups each (dates in milliseconds), in a
    folder, or as one CSV file: (data.path, the rows of each file as the run names it)."""
    columns = [*KOREAN_KEY, "district_copy", "date", "price"]
    if fmt == "csv":
        path = tmp_path / "sales.csv"
        frame = df[columns].assign(date=df["date"].dt.strftime("%Y-%m-%d"))
        frame.to_csv(path, index=False, float_format="%.17g")
        return str(path), {str(path): frame}
    folder = tmp_path / "sales"
    folder.mkdir()
    parts = {}
    for k, rows in enumerate(np.array_split(np.arange(len(df)), 3)):
        part = df.iloc[rows][columns].reset_index(drop=True)
        table = pa.Table.from_pandas(part, preserve_index=False)
        table = table.set_column(table.schema.get_field_index("date"), "date", table["date"].cast(pa.timestamp("ms")))
        path = folder / f"part-{k}.parquet"
        pq.write_table(table, path, row_group_size=97)
        parts[os.path.join(str(folder), path.name)] = part
    return str(folder), parts


def assert_traced(saved_path: Path, parts: dict[str, pd.DataFrame], fmt: str) -> pd.DataFrame:
    """Every saved pair joined back to its two sales by (source file, source row): both are found,
    their prices give the pair's prices and y, their dates its periods and its saved dates, and
    they share the pair's property key."""
    saved = pd.read_parquet(saved_path)
    assert list(saved.columns) == [*SEED_COLUMNS, *KOREAN_KEY, "date_prev", "date_recent", *SOURCE_COLUMNS]
    date_type = pq.read_schema(saved_path).field("date_prev").type
    assert date_type == (pa.timestamp("ms") if fmt == "parquet" else pa.date32())  # the type as read
    schema = pq.read_schema(saved_path)
    assert [schema.field(c).type for c in SOURCE_COLUMNS] == [pa.string(), pa.int64()] * 2  # plain text
    sales = pd.concat(
        [part.assign(source_file=name, source_row=np.arange(len(part))) for name, part in parts.items()]
    ).set_index(["source_file", "source_row"])
    sales["date"] = pd.to_datetime(sales["date"])
    sold = {}
    for side in ("prev", "recent"):
        at = pd.MultiIndex.from_arrays([saved[f"source_file_{side}"], saved[f"source_row_{side}"]])
        assert at.isin(sales.index).all(), side  # every pair finds its sale
        sold[side] = sales.loc[at].reset_index(drop=True)
        saved_date = pd.to_datetime(saved[f"date_{side}"])
        assert (sold[side]["date"] == saved_date).all(), side
        month = sold[side]["date"].dt.to_period("M").dt.to_timestamp()
        assert (month == saved["PrevYearMonth" if side == "prev" else "RecentYearMonth"]).all(), side
        for key in KOREAN_KEY:
            assert sold[side][key].astype(str).tolist() == saved[key].astype(str).tolist(), (side, key)
    np.testing.assert_array_equal(sold["prev"]["price"], saved["PrevPrice"])
    np.testing.assert_array_equal(sold["recent"]["price"], saved["RecentPrice"])
    y = np.log(sold["recent"]["price"].to_numpy(float) / sold["prev"]["price"].to_numpy(float))
    np.testing.assert_allclose(y, saved["LogPriceDiff"], rtol=0, atol=1e-12)
    # the region of a pair is its later sale's (CSV reads the codes as integers)
    assert sold["recent"]["district"].astype(str).tolist() == saved["group_id"].astype(str).tolist()
    return saved


@pytest.mark.parametrize(
    ("reader", "fmt"),
    [("duckdb_sales", "parquet"), ("array_sales", "parquet"), ("device_sales", "parquet"), ("array_sales", "csv")],
)
def test_saved_pairs_join_back_to_their_sales_with_the_region_inside_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, reader: str, fmt: str
) -> None:
    """On every reader: the region code (district) is also part of the property key, and the index
    equals the one with a copy of that column as the region; each saved pair traces back to its two
    sales (several files of several row groups read in small batches, or CSV)."""
    from gpu_hpi.app import load_sales, pipeline

    df = korean_sales(61, bad_prices=fmt == "parquet")
    path, parts = write_korean(tmp_path, df, fmt)
    if reader == "device_sales":
        request.getfixturevalue("stand_in_gpu")
    elif reader == "array_sales":
        monkeypatch.setattr(load_sales, "sql_sales", declined)
    common = [
        f"backend={'gpu' if reader == 'device_sales' else 'cpu'}",
        "data=transactions",
        f"data.path={q(path)}",
        f"data.columns.property=[{','.join(KOREAN_KEY)}]",
        "data.start=2014-01",
        "data.pairing=all",
        "data.max_annual_return=2.0",
        "data.max_robust_z=4.0",
        "data.batch_rows=250",
        "index.min_pairs=1",
        "output.plot=false",
        "diagnostics.revision=false",
    ]
    runs = {}
    for group in ("district", "district_copy"):
        saved = tmp_path / f"{group}-pairs.parquet"
        cfg = compose_config(*common, f"data.columns.group={group}", f"data.save_pairs={q(saved)}")
        summary = pipeline.run(cfg, tmp_path / group)
        assert summary["reader"] == reader
        runs[group] = (summary, pd.read_csv(tmp_path / group / "index.csv"), saved)
    (summary, index, saved), (_, copied, saved_copy) = runs["district"], runs["district_copy"]
    pd.testing.assert_frame_equal(index, copied)
    assert sorted(index["group"].astype(str).unique()) == ["11110", "11140", "26110", "ALL"]
    assert summary["dropped"]["return_outlier"] > 0 and summary["dropped"]["sale_missing_property"] > 0
    pairs = assert_traced(saved, parts, fmt)
    # the pairs made less those the pair filters (here the robust z) dropped
    filtered = ("holding_too_short", "holding_too_long", "extreme_return", "return_outlier")
    assert len(pairs) == summary["n_pairs_made"] - sum(summary["dropped"].get(r, 0) for r in filtered) > 500
    assert set(pairs["source_file_prev"]) == set(parts)  # pairs from every file
    assert pairs["source_row_prev"].max() > 97  # rows counted past the first row group
    pd.testing.assert_frame_equal(pairs, pd.read_parquet(saved_copy))


def test_csv_property_ids_with_leading_zeros_are_other_properties(tmp_path: Path) -> None:
    """Ids '0012' and '12' in a CSV of sale records are two properties, as in a parquet file of
    strings (the guessed integer type paired the sales of both, exit 0)."""
    df = random_sales(34, n_props=300, null_groups=False, null_keys=False, null_dates=False, bad_prices=False)
    ids = df.groupby(["a", "b", "c"], sort=False).ngroup()
    frame = pd.DataFrame(
        {"pid": [f"{i // 2:04d}" if i % 2 else str(i // 2) for i in ids], "date": df["date"], "price": df["price"]}
    )
    frame.to_csv(tmp_path / "sales.csv", index=False, float_format="%.17g")
    frame.to_parquet(tmp_path / "sales.parquet", index=False)
    args = ["data=transactions", "data.columns.property=pid", "data.columns.group=null"]
    csv, parquet = (
        run_app(tmp_path, *args, f"data.path={q(tmp_path / name)}", name=f"run-{name}").ok()
        for name in ("sales.csv", "sales.parquet")
    )
    assert csv.summary["n_pairs_made"] == parquet.summary["n_pairs_made"]
    assert csv.summary["dropped"] == parquet.summary["dropped"]
    assert_frames_equal(csv.frame, parquet.frame, atol=1e-12)


def test_blank_date_text_is_a_missing_date(tmp_path: Path) -> None:
    """'' in a column of date text is a sale without a date, as a null is: counted as
    sale_missing_date (the whole input was refused: cannot read period '')."""
    df = random_sales(36, n_props=300, null_dates=False)
    dates = df["date"].dt.strftime("%Y-%m-%d").astype(object)
    blank, nulls = dates.copy(), dates.copy()
    blank[:7], nulls[:7] = "", None
    args = ["data=transactions", "data.columns.property=[a,b,c]", "data.columns.group=group"]
    runs = []
    for name, column in (("blank", blank), ("nulls", nulls)):
        path = write_sales(tmp_path, df.assign(date=column), ["a", "b", "c"], name=f"{name}.parquet")
        runs.append(run_app(tmp_path, *args, f"data.path={q(path)}", name=name).ok())
    assert (
        runs[0].summary["dropped"] == runs[1].summary["dropped"]
        and runs[0].summary["dropped"]["sale_missing_date"] == 7
    )
    assert_frames_equal(runs[0].frame, runs[1].frame, atol=1e-12)
    frame = df.assign(date=blank)[["a", "b", "c", "date", "price", "group"]]  # the Arrow reader
    via_frame = gpu_hpi.index_from_sales(frame, property=["a", "b", "c"], group="group", backend="cpu")
    assert via_frame.dropped == runs[0].summary["dropped"]
