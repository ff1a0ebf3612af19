"""Raw sale records -> repeat-sales pairs (gpu_hpi.data.pairing, SaleSource, `data=transactions`).

The expected pairs come from a plain pandas reference written here from the documented rules (sort by
property, period, date, row; keep the last sale of a period; shift / self-merge for the pairs; the pair
filters in order, each pair counted under the first it fails; robust z within the later sale's group).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_frames_equal, q, run_app
from sales_reference import (
    FILTER_REASONS,
    MAD_TO_SD,
    PAIR_COLUMNS,
    RULES,
    SEED_COLUMNS,
    START,
    all_counts,
    assert_same_pairs,
    made_frame,
    random_sales,
    reference_pairs,
    sales_from_frame,
    sort_pairs,
)

from gpu_hpi import resolve_backend
from gpu_hpi.data.pairing import PairingRules, Sales, make_pairs
from gpu_hpi.errors import ConfigError
from gpu_hpi.io.sales import SaleSource, _composite_codes

CPU = resolve_backend("cpu")
# --------------------------------------------------------------------------------------------------
# 1. make_pairs against the pandas reference


@pytest.mark.parametrize("keys", [["a"], ["a", "b"], ["a", "b", "c"]], ids=["a", "ab", "abc"])
@pytest.mark.parametrize("rules", list(RULES))
@pytest.mark.parametrize("pairing", ["consecutive", "all"])
def test_make_pairs_matches_pandas_reference(pairing: str, rules: str, keys: list[str]) -> None:
    seed = 100 + 7 * list(RULES).index(rules) + len(keys)
    df = random_sales(seed)
    first, n_periods = START, 48
    options = {"pairing": pairing, **RULES[rules]}
    want, want_dropped = reference_pairs(df, keys, first, n_periods, options)
    sales, read = sales_from_frame(df, keys, first, n_periods)
    made = make_pairs(sales, PairingRules(**options), CPU)
    assert_same_pairs(made_frame(made, first), want)
    assert all_counts(read, made.dropped) == want_dropped
    assert made.n_pairs == len(want) > 100
    # the data exercises every sale rule, and every filter turned on drops pairs
    for reason in ("sale_invalid_price", "sale_outside_window", "sale_same_period_duplicate"):
        assert want_dropped.get(reason, 0) > 0, reason
    for name, reason in FILTER_REASONS.items():
        assert (want_dropped.get(reason, 0) > 0) == (rules in (name, "all_filters")), reason
    if len(keys) > 1:
        assert want_dropped["sale_missing_property"] > 0


@pytest.mark.parametrize("pairing", ["consecutive", "all"])
def test_make_pairs_without_groups(pairing: str) -> None:
    df = random_sales(7, null_groups=False)
    options = {"pairing": pairing, "max_robust_z": 2.0, "max_annual_return": 1.0}
    want, want_dropped = reference_pairs(df, ["a", "b"], START, 48, options, group=None)
    sales, read = sales_from_frame(df, ["a", "b"], START, 48, group=False)
    made = make_pairs(sales, PairingRules(**options), CPU)
    assert made.group is None
    assert_same_pairs(made_frame(made, START), want)
    assert all_counts(read, made.dropped) == want_dropped
    assert want_dropped["return_outlier"] > 0


def test_all_pairing_counts_and_consecutive_subset() -> None:
    """all: k(k-1)/2 pairs of a property with k kept sales; consecutive: k-1, a subset of them."""
    df = random_sales(3, bad_prices=False, null_keys=False, null_dates=False)
    cons, _ = reference_pairs(df, ["a", "b", "c"], START - 12, 72, {})
    every, _ = reference_pairs(df, ["a", "b", "c"], START - 12, 72, {"pairing": "all"})
    sales, _ = sales_from_frame(df, ["a", "b", "c"], START - 12, 72)
    got_all = made_frame(make_pairs(sales, PairingRules(pairing="all"), CPU), START - 12)
    got_cons = made_frame(make_pairs(sales, PairingRules(), CPU), START - 12)
    assert_same_pairs(got_all, every)
    assert_same_pairs(got_cons, cons)
    kept = df.drop_duplicates(["a", "b", "c", "month"]).groupby(["a", "b", "c"]).size().to_numpy()
    assert len(got_cons) == int((kept - 1).sum())
    assert len(got_all) == int((kept * (kept - 1) // 2).sum()) > len(got_cons)
    key = PAIR_COLUMNS[1:5]
    assert len(got_cons.merge(got_all, on=key)) == len(got_cons)


def small_sales(key: list[int], period: list[int], order: list[int], price: list[float], n_periods: int = 10) -> Sales:
    return Sales(
        np.asarray(key, dtype=np.int64),
        np.asarray(period, dtype=np.int64),
        np.asarray(order, dtype=np.int64),
        np.asarray(price, dtype=float),
        None,
        np.asarray(["ALL"], dtype=object),
        n_periods,
    )


def test_small_hand_made_case() -> None:
    # property 1: periods 0 (two sales: later date 5 wins), 3 (bad price), 4, 12 (outside window)
    # property 2: period 2 twice with the same date: the later row (price 30) wins; period 7
    sales = small_sales(
        key=[1, 2, 1, 1, 2, 1, 2, 1],
        period=[0, 2, 0, 3, 2, 4, 7, 12],
        order=[5, 3, 1, 2, 3, 9, 1, 1],
        price=[100.0, 20.0, 50.0, -1.0, 30.0, 200.0, 60.0, 300.0],
    )
    made = make_pairs(sales, PairingRules(), CPU)
    got = sorted(
        zip(made.prev.tolist(), made.recent.tolist(), made.price_prev.tolist(), made.price_recent.tolist(), strict=True)
    )
    assert got == [(0, 4, 100.0, 200.0), (2, 7, 30.0, 60.0)]
    np.testing.assert_allclose(made.y, np.log([2.0, 2.0]))
    assert made.dropped == {"sale_invalid_price": 1, "sale_outside_window": 1, "sale_same_period_duplicate": 2}
    # a bad price and a period outside: counted once, as an invalid price
    sales = small_sales(key=[1, 1, 1], period=[0, 20, 3], order=[0, 0, 0], price=[1.0, np.nan, 2.0])
    assert make_pairs(sales, PairingRules(), CPU).dropped == {"sale_invalid_price": 1}


def test_filters_count_each_pair_under_the_first_failing_rule() -> None:
    # pairs: hold 1 (short and extreme), 30 (long and extreme), 6 (extreme only), 3 and 4 (kept)
    sales = small_sales(
        key=[1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
        period=[0, 1, 0, 30, 0, 6, 0, 3, 1, 5],
        order=[0] * 10,
        price=[1.0, 3.0, 1.0, 1000.0, 1.0, 5.0, 1.0, 1.05, 1.0, 1.1],
        n_periods=40,
    )
    rules = PairingRules(min_holding=2, max_holding=24, max_annual_return=1.0)
    made = make_pairs(sales, rules, CPU)
    assert made.dropped == {"holding_too_short": 1, "holding_too_long": 1, "extreme_return": 1}
    assert sorted(made.recent.tolist()) == [3, 5]
    only_return = make_pairs(sales, PairingRules(max_annual_return=1.0), CPU)
    assert only_return.dropped == {"extreme_return": 3}
    yearly = make_pairs(sales, PairingRules(max_annual_return=1.0, periods_per_year=1), CPU)
    assert yearly.dropped.get("extreme_return", 0) == 1  # log(1000)/30 years only


def test_pair_group_is_the_later_sales_group() -> None:
    sales = Sales(
        np.asarray([7, 7, 7], dtype=np.int64),
        np.asarray([0, 1, 2], dtype=np.int64),
        np.zeros(3, dtype=np.int64),
        np.asarray([1.0, 2.0, 4.0]),
        np.asarray([0, 1, 2], dtype=np.int32),
        np.asarray(["a", "b", "c"], dtype=object),
        3,
    )
    made = make_pairs(sales, PairingRules(pairing="all"), CPU)
    got = sorted(zip(made.prev.tolist(), made.recent.tolist(), made.group.tolist(), strict=True))
    assert got == [(0, 1, 1), (0, 2, 2), (1, 2, 2)]


def test_robust_z_within_groups() -> None:
    """An outlier by the pooled distribution that is typical of its own group is kept."""
    rng = np.random.default_rng(5)
    n = 200
    y = np.concatenate([rng.normal(0.0, 0.01, n), rng.normal(1.0, 0.01, n)])
    y[0] = 0.2  # far from group 0's median, but near the pooled median
    sales = Sales(
        np.repeat(np.arange(2 * n), 2).astype(np.int64),
        np.tile([0, 5], 2 * n).astype(np.int64),
        np.zeros(4 * n, dtype=np.int64),
        np.column_stack([np.ones(2 * n), np.exp(y)]).ravel(),
        np.repeat(np.repeat([0, 1], n), 2).astype(np.int32),
        np.asarray(["g0", "g1"], dtype=object),
        6,
    )
    made = make_pairs(sales, PairingRules(max_robust_z=5.0), CPU)
    assert 0.2 not in np.round(made.y, 12).tolist()
    z = (y[:n] - np.median(y[:n])) / (MAD_TO_SD * np.median(np.abs(y[:n] - np.median(y[:n]))))
    z1 = (y[n:] - np.median(y[n:])) / (MAD_TO_SD * np.median(np.abs(y[n:] - np.median(y[n:]))))
    assert made.dropped == {"return_outlier": int((np.abs(z) > 5).sum() + (np.abs(z1) > 5).sum())}
    pooled = make_pairs(
        Sales(sales.key, sales.period, sales.order, sales.price, None, np.asarray(["ALL"], dtype=object), 6),
        PairingRules(max_robust_z=5.0),
        CPU,
    )
    assert pooled.n_pairs == 2 * n  # pooled, the two groups' spread hides every outlier


def test_empty_and_single_sales() -> None:
    empty = small_sales([], [], [], [])
    for pairing in ("consecutive", "all"):
        made = make_pairs(empty, PairingRules(pairing=pairing), CPU)
        assert made.n_pairs == 0 and made.dropped == {}
        one = make_pairs(small_sales([1, 2], [0, 1], [0, 0], [1.0, 2.0]), PairingRules(pairing=pairing), CPU)
        assert one.n_pairs == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"pairing": "bogus"}, {"min_holding": 0}, {"max_holding": -1}, {"max_annual_return": 0.0}, {"max_robust_z": -2}],
)
def test_rules_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PairingRules(**kwargs)


# --------------------------------------------------------------------------------------------------
# composite keys


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


# --------------------------------------------------------------------------------------------------
# 2. SaleSource.read on parquet and CSV files


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


# --------------------------------------------------------------------------------------------------
# 3. end to end: python -m gpu_hpi data=transactions


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
    assert list(got.columns) == SEED_COLUMNS
    assert_same_pairs(seed_to_pairs(got), pairs)

    s = tx.summary
    assert s["n_sales_read"] == len(e2e["df"])
    assert s["n_pairs_made"] == len(pairs)
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
    filtered = sum(v for k, v in dropped.items() if not k.startswith("sale_"))
    assert s["n_pairs_read"] == len(pairs) + filtered
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
    assert s["n_pairs_made"] == len(pairs) and s["dropped"] == dropped

    cons = run_app(tmp, *tx_args(e2e, "method=arithmetic"), name="tx_cons_arith").ok()
    assert cons.summary["n_pairs_made"] == len(cons_pairs)
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


def test_cli_transactions_missing_column_is_one_line_error(e2e: dict[str, Any]) -> None:
    run = run_app(e2e["tmp"], *tx_args(e2e, "data.columns.price=sale_amount"), name="missing_column")
    line = run.assert_failed("sale_amount")
    assert "complex" in line.split("sale_amount", 1)[1]  # the columns found are listed
