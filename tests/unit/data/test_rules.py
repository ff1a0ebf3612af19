"""The drop rules (data.rules) are declared once; each engine's form of them (arrays, libcudf's
columns, DuckDB's SQL, the CUDA kernel's C) is made from that declaration. These tests hold every
form to an independent statement of the rules, on pairs failing each rule, several at once, with
nulls, NaN and infinities."""

from __future__ import annotations

import functools

import duckdb
import fake_pylibcudf as fake
import numpy as np
import pyarrow as pa
import pytest

from gpu_hpi.data import kernels, rules
from gpu_hpi.io import device, device_columns

T = 9


def hostile_pairs(n: int = 4000, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, -25.0])  # and absurd finite ratios

    def with_specials(values: np.ndarray) -> np.ndarray:
        hit = rng.random(n) < 0.08
        values[hit] = rng.choice(specials, int(hit.sum()))
        return values

    return {
        "group": rng.integers(-1, 4, n),
        "prev": rng.integers(-2, T + 2, n),
        "recent": rng.integers(-2, T + 2, n),
        "y": with_specials(rng.normal(0, 0.1, n)),
        "price_prev": with_specials(rng.uniform(1, 2, n)),
        "price_recent": with_specials(rng.uniform(1, 2, n)),
    }


def reference(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rules as the README states them, written out independently of data.rules."""
    tests = {
        "missing_group": p["group"] < 0,
        "period_out_of_range": (p["prev"] < 0) | (p["prev"] >= T) | (p["recent"] < 0) | (p["recent"] >= T),
        "same_period": p["prev"] == p["recent"],
        "prev_not_before_recent": p["prev"] > p["recent"],
        "invalid_price": ~(
            (p["price_prev"] > 0)
            & (p["price_recent"] > 0)
            & np.isfinite(p["price_prev"])
            & np.isfinite(p["price_recent"])
        ),
        "absurd_price": (p["price_prev"] > 1e15) | (p["price_recent"] > 1e15),  # no house costs more
        "nonfinite_y": ~np.isfinite(p["y"]),
        "absurd_y": np.abs(p["y"]) > np.log(1e9),  # NaN compares False: nonfinite_y's
    }
    seen = np.zeros(p["y"].shape, dtype=bool)
    out = {}
    for reason, bad in tests.items():
        out[reason] = bad & ~seen
        seen |= bad
    return out


def test_the_declared_order_is_the_counted_order() -> None:
    assert rules.DROP_REASONS == (
        "missing_period",
        "missing_group",
        "period_out_of_range",
        "same_period",
        "prev_not_before_recent",
        "invalid_price",
        "absurd_price",
        "nonfinite_y",
        "absurd_y",
    )


def test_the_array_form_equals_the_reference() -> None:
    pairs = hostile_pairs()
    got, want = rules.failing(np, pairs, T), reference(pairs)
    assert list(got) == list(want)
    for reason in want:
        np.testing.assert_array_equal(got[reason], want[reason], err_msg=reason)
        assert want[reason].any(), reason  # every rule is exercised
    without_prices = {k: v for k, v in pairs.items() if not k.startswith("price")}
    assert "invalid_price" not in rules.failing(np, without_prices, T)


def test_the_sql_form_counts_as_the_arrays_nulls_failing() -> None:
    pairs = hostile_pairs()
    nulls = np.random.default_rng(9).random(pairs["y"].size) < 0.03
    table = pa.table({k: pa.array(v, mask=nulls if k in ("y", "price_prev") else None) for k, v in pairs.items()})
    names = {c: f'"{c}"' for c in rules.COLUMNS} | {"T": str(T)}
    query = ", ".join(f"{rules.sql_condition(rule, names)} AS {rule.reason}" for rule in rules.DROP_RULES)
    con = duckdb.connect()
    con.register("pairs", table)
    got = con.sql(f"SELECT {query} FROM pairs").fetchnumpy()
    as_nan = {k: np.where(nulls, np.nan, v) if k in ("y", "price_prev") else v for k, v in pairs.items()}
    # each pair counted under the first rule it fails: a null (NaN on the host) fails nonfinite_y
    # before absurd_y looks at it, in either engine
    counted = rules.failing(np, as_nan, T)
    seen = np.zeros(nulls.shape, dtype=bool)
    for rule in rules.DROP_RULES:
        sql = np.asarray(got[rule.reason], dtype=bool)
        assert counted[rule.reason].any(), rule.reason
        np.testing.assert_array_equal(sql & ~seen, counted[rule.reason], err_msg=rule.reason)
        seen |= sql


def test_the_libcudf_form_equals_the_arrays() -> None:
    pairs = hostile_pairs()
    ops = device.Ops(fake.plc)
    columns = {k: ops.from_host(v) for k, v in pairs.items()}
    for rule in rules.DROP_RULES:
        test = functools.reduce(ops.either, (device_columns._holds(ops, columns, T, *c) for c in rule.any_of))
        want = rules.violates(np, rule, pairs, T)
        np.testing.assert_array_equal(ops.to_host(test), want, err_msg=rule.reason)


def test_the_kernels_c_is_the_declaration() -> None:
    assert (*rules.DROP_REASONS[1:5], "nonfinite_y", "absurd_y") == kernels.REASONS
    assert kernels.reason_chain().splitlines() == [
        "        if (g < 0) reason = 0;",
        "        else if (i < 0 || i >= T || j < 0 || j >= T) reason = 1;",
        "        else if (i == j) reason = 2;",
        "        else if (i > j) reason = 3;",
        "        else if (!(v - v == 0.0)) reason = 4;",
        "        else if (v > 20.72326583694641 || v < -20.72326583694641) reason = 5;",
    ]
    source = kernels.kernel_source()
    assert "REASON_CHAIN" not in source and "N_REASONS" not in source
    assert "block_dropped[6]" in source


@pytest.mark.parametrize("reason", [r.reason for r in rules.DROP_RULES])
def test_each_rule_reads_only_the_columns_it_needs(reason: str) -> None:
    rule = rules.rule(reason)
    pairs = hostile_pairs(200)
    given = {c: pairs[c] for c in rule.needs}
    assert rule in rules.applicable(given) and rules.violates(np, rule, given, T).any()  # no other column read
