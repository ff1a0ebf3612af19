"""The pandas reference of the sale-record rules (data/pairing.py's module docstring), written here
from the documented rules and not from the package: random sale records, their expected pairs and
drop counts, and the helpers that compare pairs. Shared by the sale-record tests of every reader
and backend."""

from __future__ import annotations

import functools
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gpu_hpi.data.pairing import Sales
from gpu_hpi.io.sales import _composite_codes

# a random element of these by its index: the draws of Generator.choice, without its per-call cost
KEY_B = ("x", "y", "zz", "é")
GROUPS = ("north", "south", "east")
MAD_TO_SD = 1 / statistics.NormalDist().inv_cdf(0.75)  # computed here, not taken from the package
START = 2014 * 12  # absolute month of 2014-01
SEED_COLUMNS = ["group_id", "PrevYearMonth", "RecentYearMonth", "LogPriceDiff", "PrevPrice", "RecentPrice"]
PAIR_COLUMNS = ["group", "prev", "recent", "price_prev", "price_recent", "y"]
RULES = {
    "none": {},
    "min_holding": {"min_holding": 4},
    "max_holding": {"max_holding": 18},
    "extreme_return": {"max_annual_return": 0.8},
    "robust_z": {"max_robust_z": 2.5},
    "all_filters": {"min_holding": 2, "max_holding": 30, "max_annual_return": 0.8, "max_robust_z": 2.5},
}
FILTER_REASONS = {
    "min_holding": "holding_too_short",
    "max_holding": "holding_too_long",
    "extreme_return": "extreme_return",
    "robust_z": "return_outlier",
}


# --------------------------------------------------------------------------------------------------
# random sale records and the pandas reference


def random_sales(seed: int, n_props: int = 500, n_months: int = 48, **kw: bool) -> pd.DataFrame:
    """_random_sales' records: a copy of those made before for the same arguments (made row by row,
    they cost ~50 ms a call)."""
    return _random_sales(seed, n_props, n_months, **kw).copy()


@functools.lru_cache(maxsize=64)
def _random_sales(
    seed: int,
    n_props: int = 500,
    n_months: int = 48,
    *,
    null_keys: bool = True,
    null_groups: bool = True,
    null_dates: bool = True,
    bad_prices: bool = True,
) -> pd.DataFrame:
    """Sale records of properties with 1..8 sales, keyed by (a, b, c): a nullable int shared by
    three properties, b a string (nullable), c an int. Months from -3 to n_months + 2 (relative to
    2014-01, so some fall outside a window of n_months); same-period repeats with different and with
    equal dates; bad prices; gross price outliers; the group changes between sales; rows shuffled
    (file order != time order)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for p in range(n_props):
        a, b, c = p // 3, KEY_B[rng.integers(len(KEY_B))], int(rng.integers(1, 4))
        level = rng.normal(12.0, 0.6)
        sales: list[tuple[int, int]] = []
        for _ in range(int(rng.integers(1, 9))):
            month, day = int(rng.integers(-3, n_months + 3)), int(rng.integers(1, 29))
            if sales and rng.random() < 0.3:  # another sale in a period of this property
                month, prev_day = sales[int(rng.integers(len(sales)))]
                if rng.random() < 0.5:
                    day = prev_day  # the same date: the later row wins
            sales.append((month, day))
            log_price = level + 0.01 * month + rng.normal(0, 0.05)
            if rng.random() < 0.04:
                log_price += (-2.0, 2.0)[rng.integers(2)]
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "c": c,
                    "month": month,
                    "day": day,
                    "price": float(np.exp(log_price)),
                    "group": GROUPS[rng.integers(len(GROUPS))],
                    "prop": p,
                }
            )
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n = len(df)
    absm = START + df["month"].to_numpy()
    df["date"] = pd.to_datetime(pd.DataFrame({"year": absm // 12, "month": absm % 12 + 1, "day": df["day"]}))
    df["a"] = df["a"].astype("Int64")
    df["b"] = df["b"].astype(object)
    df["group"] = df["group"].astype(object)
    if bad_prices:
        u = rng.random(n)
        df.loc[u < 0.03, "price"] = np.nan
        df.loc[(u >= 0.03) & (u < 0.05), "price"] = 0.0
        df.loc[(u >= 0.05) & (u < 0.06), "price"] = -5.0
        df.loc[(u >= 0.06) & (u < 0.07), "price"] = np.inf
    if null_keys:
        df.loc[rng.random(n) < 0.03, "a"] = pd.NA
        df.loc[rng.random(n) < 0.03, "b"] = None
    if null_groups:
        df.loc[rng.random(n) < 0.05, "group"] = None
    if null_dates:
        df.loc[rng.random(n) < 0.02, "date"] = pd.NaT
    df["row"] = np.arange(n)
    return df


def reference_pairs(
    df: pd.DataFrame,
    keys: list[str],
    first: int,
    n_periods: int,
    rules: dict[str, Any],
    *,
    when: str = "date",
    group: str | None = "group",
    periods_per_year: int = 12,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """(pairs: group, prev, recent (absolute months), price_prev, price_recent, y; reason -> count).
    `when` orders the sales within a period (then the row); periods are the date's absolute month."""
    counts: dict[str, int] = {}

    def count(reason: str, mask: Any) -> None:
        counts[reason] = counts.get(reason, 0) + int(np.sum(mask))

    d = df.copy()
    no_date = d["date"].isna().to_numpy()
    count("sale_missing_date", no_date)
    d = d[~no_date]
    no_key = d[keys].isna().any(axis=1).to_numpy()
    count("sale_missing_property", no_key)
    d = d[~no_key].copy()
    price = d["price"].to_numpy(float)
    bad = ~(np.isfinite(price) & (price > 0))
    d["period"] = (d["date"].dt.year * 12 + d["date"].dt.month - 1).to_numpy() - first
    outside = ~bad & ((d["period"] < 0) | (d["period"] >= n_periods)).to_numpy()
    count("sale_invalid_price", bad)
    count("sale_outside_window", outside)
    d = d[~bad & ~outside]
    d = d.sort_values([*keys, "period", when, "row"], kind="stable")
    dup = d.duplicated([*keys, "period"], keep="last").to_numpy()
    count("sale_same_period_duplicate", dup)
    d = d[~dup].copy()
    d["k"] = d.groupby(keys, sort=False).cumcount()
    if group is None:
        d["g"] = "ALL"
    else:
        d["g"] = d[group]
    cols = [*keys, "k", "period", "price", "g"]
    if rules.get("pairing", "consecutive") == "consecutive":
        later = d[cols].assign(k=d["k"] - 1)
        m = d[cols].merge(later, on=[*keys, "k"], suffixes=("_0", "_1"))
    else:
        m = d[cols].merge(d[cols], on=keys, suffixes=("_0", "_1"))
        m = m[m["k_0"] < m["k_1"]]
    pairs = pd.DataFrame(
        {
            "group": m["g_1"].to_numpy(object),
            "prev": m["period_0"].to_numpy(np.int64) + first,
            "recent": m["period_1"].to_numpy(np.int64) + first,
            "price_prev": m["price_0"].to_numpy(float),
            "price_recent": m["price_1"].to_numpy(float),
        }
    )
    pairs["y"] = np.log(pairs["price_recent"].to_numpy() / pairs["price_prev"].to_numpy())
    hold = (pairs["recent"] - pairs["prev"]).to_numpy()
    y = pairs["y"].to_numpy()
    alive = np.ones(len(pairs), dtype=bool)
    tests = []
    if rules.get("min_holding") is not None:
        tests.append(("holding_too_short", hold < rules["min_holding"]))
    if rules.get("max_holding") is not None:
        tests.append(("holding_too_long", hold > rules["max_holding"]))
    if rules.get("max_annual_return") is not None:
        tests.append(("extreme_return", np.abs(y) * periods_per_year / hold > rules["max_annual_return"]))
    for reason, fails in tests:
        count(reason, fails & alive)
        alive &= ~fails
    if rules.get("max_robust_z") is not None:
        outlier = np.zeros(len(pairs), dtype=bool)
        for _, idx in pairs[alive].groupby("group", dropna=True).groups.items():
            values = y[idx]
            median = np.median(values)
            mad = np.median(np.abs(values - median)) * MAD_TO_SD
            z = (values - median) / (mad if mad > 0 else 1.0)
            outlier[idx] = np.abs(z) > rules["max_robust_z"]
        count("return_outlier", outlier)
        alive &= ~outlier
    return pairs[alive].reset_index(drop=True), {k: v for k, v in counts.items() if v}


def made_frame(made: Any, first: int) -> pd.DataFrame:
    """make_pairs' output (host arrays) as a frame like the reference's."""
    labels = np.asarray(made.group_labels, dtype=object)
    host = {k: np.asarray(getattr(made, k)) for k in ("prev", "recent", "price_prev", "price_recent", "y")}
    if made.group is None:
        group = np.full(len(host["y"]), "ALL", dtype=object)
    else:
        codes = np.asarray(made.group).astype(np.int64)
        group = np.where(codes >= 0, labels[np.maximum(codes, 0)], None)
    return pd.DataFrame(
        {
            "group": group,
            "prev": host["prev"].astype(np.int64) + first,
            "recent": host["recent"].astype(np.int64) + first,
            "price_prev": host["price_prev"],
            "price_recent": host["price_recent"],
            "y": host["y"],
        }
    )


def sort_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.assign(group=frame["group"].map(lambda g: "<NA>" if g is None or g is pd.NA else str(g)))
    return out.sort_values(PAIR_COLUMNS[:5], kind="stable").reset_index(drop=True)


def assert_same_pairs(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got, want = sort_pairs(got), sort_pairs(want)
    assert len(got) == len(want)
    assert got["group"].tolist() == want["group"].tolist()
    for col in ("prev", "recent", "price_prev", "price_recent"):
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(got["y"].to_numpy(), want["y"].to_numpy(), rtol=0, atol=1e-12)


def sales_from_frame(
    df: pd.DataFrame, keys: list[str], first: int, n_periods: int, group: bool = True
) -> tuple[Sales, dict[str, int]]:
    """Sales built directly (numpy arrays) from the frame, with the reader's dropped counts."""
    dated = df[df["date"].notna()]
    key = _composite_codes([pa.chunked_array([pa.array(dated[k])]) for k in keys])
    has_key = key >= 0
    d = dated[has_key]
    period = (d["date"].dt.year * 12 + d["date"].dt.month - 1).to_numpy(np.int64) - first
    if group:
        codes, labels = pd.factorize(d["group"].to_numpy(object), sort=True, use_na_sentinel=True)
        codes, labels = codes.astype(np.int32), np.asarray(labels, dtype=object)
    else:
        codes, labels = None, np.asarray(["ALL"], dtype=object)
    sales = Sales(
        key=key[has_key],
        period=period,
        order=d["date"].to_numpy("datetime64[ns]").astype(np.int64),
        price=d["price"].to_numpy(float),
        group=codes,
        group_labels=labels,
        n_periods=n_periods,
    )
    read = {"sale_missing_date": int(len(df) - len(dated)), "sale_missing_property": int((~has_key).sum())}
    return sales, read


def all_counts(*parts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return {k: v for k, v in total.items() if v}


def write_sales(tmp_path: Path, df: pd.DataFrame, keys: list[str], name: str = "sales.parquet", **kw: Any) -> Path:
    """random_sales' frame (its `keys`, date, price and group) as a parquet file in tmp_path."""
    path = tmp_path / name
    table = pa.Table.from_pandas(df[[*keys, "date", "price", "group"]], preserve_index=False)
    pq.write_table(table, path, **kw)
    return path
