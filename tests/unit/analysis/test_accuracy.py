"""Accuracy (analysis/accuracy.py) against references written here: the k-fold cross-validation by
explicit refits (estimate_index on the pairs outside each fold, the folds by the multiplicative hash
of the position), hpiR's in-sample errors per pair from the full index, and forecast errors from a
refit on the data through t - 1 for each pair sold in t."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from diagnostics_reference import (
    CPU,
    FOLDS,
    PAIRS_T,
    Data,
    T,
    estimate,
    fit_cpu,
    fit_pairs,
    random_pairs,
    ref_fold,
)

import gpu_hpi
from gpu_hpi.analysis.accuracy import Accuracy, accuracy, fold_of, forecast_errors, in_sample_errors
from gpu_hpi.analysis.refit import Refit
from gpu_hpi.analysis.revision import vintage_indices
from gpu_hpi.data.pairs import pooled_pairs
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def test_fold_of_is_the_multiplicative_hash_of_the_position() -> None:
    for folds in (2, 5, 10, 100):
        got = fold_of(1000, folds)
        assert got.tolist() == [ref_fold(p, folds) for p in range(1000)]
        assert sorted(set(got.tolist())) == list(range(folds))
        np.testing.assert_array_equal(fold_of(300, folds, start=700), got[700:])
    big = 2**33 + 12345
    assert int(fold_of(1, 7, start=big)[0]) == ref_fold(big, 7)


@dataclass
class RefAccuracy:
    groups: list[str]
    mean_abs: np.ndarray
    median_abs: np.ndarray
    rmse: np.ndarray
    n_scored: np.ndarray
    n_unscored: np.ndarray
    overall: dict[str, float]


def ref_accuracy(data: Data, folds: int, base: int, method: str, group: bool = True) -> RefAccuracy:
    n = len(data.y)
    fold = np.array([ref_fold(p, folds) for p in range(n)])
    labels = [str(g) for g in np.unique(data.group)] if group else ["ALL"]
    key = [str(g) for g in data.group] if group else ["ALL"] * n
    errors: dict[str, list[float]] = {g: [] for g in labels}
    unscored = dict.fromkeys(labels, 0)
    for f in range(folds):
        fitted = estimate(data, fold != f, T, base, method, group=group)
        rows = {str(g): r for r, g in enumerate(fitted.groups)}
        for p in np.flatnonzero((fold == f) & data.valid):
            r = rows.get(key[p])
            li = fitted.log_index[r] if r is not None else np.full(T, np.nan)
            err = data.y[p] - (li[data.recent[p]] - li[data.prev[p]])
            if np.isfinite(err):
                errors[key[p]].append(float(err))
            else:
                unscored[key[p]] += 1

    def stats(e: list[float]) -> tuple[float, float, float]:
        a = np.abs(e)
        return (a.mean(), np.median(a), np.sqrt(np.mean(np.square(e)))) if e else (np.nan,) * 3

    per = np.array([stats(errors[g]) for g in labels])
    every = [e for g in labels for e in errors[g]]
    m, md, r = stats(every)
    overall = {
        "mean_abs_error": m,
        "median_abs_error": md,
        "rmse": r,
        "n_scored": len(every),
        "n_unscored": sum(unscored.values()),
    }
    return RefAccuracy(
        labels,
        per[:, 0],
        per[:, 1],
        per[:, 2],
        np.array([len(errors[g]) for g in labels]),
        np.array([unscored[g] for g in labels]),
        overall,
    )


def assert_accuracy_equal(got: Accuracy, want: RefAccuracy, folds: int) -> None:
    assert [str(g) for g in got.groups] == want.groups
    assert got.folds == folds
    np.testing.assert_array_equal(got.n_scored, want.n_scored)
    np.testing.assert_array_equal(got.n_unscored, want.n_unscored)
    for name in ("mean_abs", "median_abs", "rmse"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=0, atol=1e-9, err_msg=name)
    assert set(got.overall) == set(want.overall)
    for name, value in want.overall.items():
        assert got.overall[name] == pytest.approx(value, rel=0, abs=1e-9), name
    frame = got.to_frame()
    assert list(frame.columns) == [
        "kind",
        "group",
        "mean_error",
        "mean_abs_error",
        "median_abs_error",
        "rmse",
        "n_scored",
        "n_unscored",
    ]
    assert frame["kind"].unique().tolist() == ["kfold"]
    assert frame["group"].tolist() == want.groups
    np.testing.assert_allclose(frame["rmse"], want.rmse, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(frame["n_scored"], want.n_scored)


@pytest.mark.parametrize("method, base", [("bmn", 0), ("bmn", 3), ("case_shiller", 0)])
def test_accuracy_matches_explicit_refits(data: Data, method: str, base: int) -> None:
    pairs = data.pairs()
    table = gpu_hpi.build_cell_table(pairs, CPU)
    result = gpu_hpi.fit_index(table, base_period=base, backend="cpu", method=method)
    acc = accuracy(pairs, table, fit_cpu(method, base), result, CPU, FOLDS)
    want = ref_accuracy(data, FOLDS, base, method)
    assert_accuracy_equal(acc, want, FOLDS)

    # the three held-out pairs through RARE cannot be predicted without their fold: unscored
    if method == "bmn":
        assert acc.n_unscored.tolist() == [0, 3, 0]
    assert acc.n_unscored[1] >= 3
    n_valid = int(data.valid.sum())
    assert acc.overall["n_scored"] + acc.overall["n_unscored"] == n_valid
    assert int(acc.n_scored.sum()) == acc.overall["n_scored"]
    assert 0 < acc.overall["mean_abs_error"] < acc.overall["rmse"] < 0.1

    # reproducible: the folds depend only on the pairs' positions
    again = accuracy(pairs, table, fit_cpu(method, base), result, CPU, FOLDS)
    np.testing.assert_array_equal(again.rmse, acc.rmse)
    np.testing.assert_array_equal(again.n_unscored, acc.n_unscored)
    assert again.overall == acc.overall


def test_accuracy_of_the_pooled_index(data: Data) -> None:
    """As the command line does with index.groups=false: the pooled pairs against the pooled table."""
    pairs = data.pairs()
    table = gpu_hpi.build_cell_table(pairs, CPU)
    result = gpu_hpi.fit_index(table, backend="cpu")
    acc = accuracy(pooled_pairs(pairs), table.pooled(), fit_cpu("bmn", 0), result, CPU, 4)
    want = ref_accuracy(data, 4, 0, "bmn", group=False)
    assert_accuracy_equal(acc, want, 4)
    assert acc.n_unscored.tolist() == [0]  # the pooled index has RARE from the other groups


def test_accuracy_other_fold_counts_differ(data: Data) -> None:
    pairs = data.pairs()
    table = gpu_hpi.build_cell_table(pairs, CPU)
    result = gpu_hpi.fit_index(table, backend="cpu")
    two = accuracy(pairs, table, fit_cpu("bmn", 0), result, CPU, 2)
    assert_accuracy_equal(two, ref_accuracy(data, 2, 0, "bmn"), 2)
    five = accuracy(pairs, table, fit_cpu("bmn", 0), result, CPU, FOLDS)
    assert not np.allclose(two.rmse, five.rmse, rtol=0, atol=1e-12)


@pytest.mark.parametrize("folds", [0, 1, 101])
def test_accuracy_fold_count_out_of_range(data: Data, folds: int) -> None:
    pairs = data.pairs()
    table = gpu_hpi.build_cell_table(pairs, CPU)
    result = gpu_hpi.fit_index(table, backend="cpu")
    with pytest.raises(gpu_hpi.ConfigError, match="folds"):
        accuracy(pairs, table, fit_cpu("bmn", 0), result, CPU, folds)


def stats(errors: np.ndarray) -> tuple[float, float, int]:
    return float(np.mean(errors)), float(np.sqrt(np.mean(errors**2))), errors.size


def check(frame: pd.DataFrame, group: str, want: tuple[float, float, int]) -> None:
    row = frame[frame["group"] == group].iloc[0]
    assert row["mean_error"] == pytest.approx(want[0], abs=1e-10)
    assert row["rmse"] == pytest.approx(want[1], rel=1e-9)
    assert row["n_scored"] == want[2]


def test_in_sample_error_per_pair_reference() -> None:
    group, prev, recent, y = random_pairs(1)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=PAIRS_T, backend=CPU), CPU)
    result = gpu_hpi.fit_index(table, backend=CPU, min_pairs=1)
    frame = in_sample_errors(table, Refit(MethodOptions(), 1, True, True), result)
    assert frame["kind"].unique().tolist() == ["in_sample"]
    rows = {str(g): k for k, g in enumerate(result.groups)}
    for g in range(3):
        li = result.log_index[rows[str(g)]]
        mine = group == g
        check(frame, str(g), stats(y[mine] - (li[recent[mine]] - li[prev[mine]])))
    pooled = result.log_index[rows["ALL"]]
    check(frame, "ALL", stats(y - (pooled[recent] - pooled[prev])))


def test_forecast_error_refit_reference() -> None:
    """Each pair sold in t >= 2 predicted by fit_index on the pairs completed by t - 1 (the
    published vintage), the level at t taken as that at t - 1."""
    group, prev, recent, y = random_pairs(2)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=PAIRS_T, backend=CPU), CPU)
    result = gpu_hpi.fit_index(table, backend=CPU, min_pairs=1)
    refit = Refit(MethodOptions(), 1, True, True)
    stack = vintage_indices(table, refit, result)
    frame = forecast_errors(table, refit, result, stack)
    errors: dict[str, list[float]] = {"0": [], "1": [], "2": [], "ALL": []}
    unscored: dict[str, int] = dict.fromkeys(errors, 0)
    for t in range(PAIRS_T):
        sold = recent == t
        if t < 2:
            for g in range(3):
                unscored[str(g)] += int((sold & (group == g)).sum())
            unscored["ALL"] += int(sold.sum())
            continue
        before = recent <= t - 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
            vintage = fit_pairs(group[before], prev[before], recent[before], y[before])
        rows = {str(g): k for k, g in enumerate(vintage.groups)}
        for name in errors:
            mine = sold if name == "ALL" else sold & (group == int(name))
            if name not in rows:  # no pair of the region completed yet: no forecast
                unscored[name] += int(mine.sum())
                continue
            li = vintage.log_index[rows[name]]
            d = li[t - 1] - li[prev[mine]]
            ok = np.isfinite(d)
            errors[name].extend((y[mine] - d)[ok].tolist())
            unscored[name] += int((~ok).sum())
    for name, values in errors.items():
        check(frame, name, stats(np.asarray(values)))
        assert frame.loc[frame["group"] == name, "n_unscored"].iloc[0] == unscored[name]
