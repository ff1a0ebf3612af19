"""Raw sale records -> repeat-sales pairs (data/pairing.py: make_pairs).

The expected pairs come from the plain pandas reference of tests/sales_reference.py, written from the
documented rules (sort by property, period, date, row; keep the last sale of a period; shift /
self-merge for the pairs; the pair filters in order, each pair counted under the first it fails;
robust z within the later sale's group); and hand-made cases.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from sales_reference import (
    FILTER_REASONS,
    MAD_TO_SD,
    PAIR_COLUMNS,
    RULES,
    START,
    all_counts,
    assert_same_pairs,
    made_frame,
    random_sales,
    reference_pairs,
    sales_from_frame,
)

from gpu_hpi import resolve_backend
from gpu_hpi.data.pair_filters import PairingRules
from gpu_hpi.data.pairing import Sales, make_pairs, pair_sorted_sales, select_pairs
from gpu_hpi.errors import ConfigError

CPU = resolve_backend("cpu")


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


@pytest.mark.parametrize("pairing", ["consecutive", "all"])
def test_traced_pairs_name_their_two_sales(pairing: str) -> None:
    """trace=True: the same pairs, with the positions of their two sales, which give each pair's
    property, periods, prices and group (the later sale's)."""
    sales, _ = sales_from_frame(random_sales(17), ["a", "b", "c"], START, 48)
    rules = PairingRules(pairing=pairing, max_holding=30, max_annual_return=1.0, max_robust_z=2.5)
    plain = make_pairs(sales, rules, CPU)
    made = make_pairs(sales, rules, CPU, trace=True)
    assert plain.sale_prev is None and made.dropped == plain.dropped
    for name in ("group", "prev", "recent", "price_prev", "price_recent", "y"):
        np.testing.assert_array_equal(getattr(made, name), getattr(plain, name), err_msg=name)
    first, second = made.sale_prev, made.sale_recent
    assert made.n_pairs > 300 and first.shape == second.shape == (made.n_pairs,)
    np.testing.assert_array_equal(sales.key[first], sales.key[second])
    np.testing.assert_array_equal(sales.period[first], made.prev)
    np.testing.assert_array_equal(sales.period[second], made.recent)
    np.testing.assert_array_equal(sales.price[first], made.price_prev)
    np.testing.assert_array_equal(sales.price[second], made.price_recent)
    np.testing.assert_array_equal(sales.group[second], made.group)


def test_sorted_sales_traced_and_selected() -> None:
    """pair_sorted_sales' positions skip the same-period sale replaced; select_pairs keeps the
    positions and the rows of a trace table of the pairs kept."""
    import pyarrow as pa

    key, period = np.array([1, 1, 1, 2, 2]), np.array([0, 0, 3, 1, 5])
    price = np.array([10.0, 11.0, 12.0, 20.0, 40.0])
    made = pair_sorted_sales(np, key, period, price, None, "consecutive", np.asarray(["ALL"], dtype=object), 6, True)
    assert made.sale_prev.tolist() == [1, 3] and made.sale_recent.tolist() == [2, 4]
    made = select_pairs(made, np.array([True, True]), {})
    traced = select_pairs(replace(made, trace=pa.table({"row": [1, 3]})), np.array([False, True]), {})
    assert traced.sale_prev.tolist() == [3] and traced.trace.column("row").to_pylist() == [3]
    assert traced.as_pairs().trace.num_rows == 1 and not hasattr(made.as_pairs(), "trace")
