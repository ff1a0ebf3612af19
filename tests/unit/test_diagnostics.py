"""The diagnostics of an index (gpu_hpi.analysis) against straightforward references written here:
plain loops for the rolling statistics, and explicit refits (gpu_hpi.estimate_index on explicitly
selected pairs) for the revision and the k-fold cross-validation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import gpu_hpi
from gpu_hpi.analysis.accuracy import Accuracy, accuracy, fold_of
from gpu_hpi.analysis.refit import Refit
from gpu_hpi.analysis.revision import nan_median, revision
from gpu_hpi.analysis.series import diagnostics_frame, period_changes, smooth, volatility
from gpu_hpi.data.pairs import pooled_pairs

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = gpu_hpi.resolve_backend("cpu")
T = 12
LABELS = (10, 20, 30)
FOLDS = 5
RARE = 7  # the period of group 20 that only three pairs touch, all of them in fold 0
EMPTY = 4  # the period of group 30 that no pair touches


def ref_fold(p: int, folds: int) -> int:
    """The fold of the pair at position p, in plain Python integers."""
    return ((p * 2654435761) % 2**32) % folds


@dataclass
class Data:
    prev: np.ndarray
    recent: np.ndarray
    y: np.ndarray
    group: np.ndarray
    rare_positions: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.y) & (self.prev < self.recent)

    def pairs(self, group: bool = True) -> gpu_hpi.Pairs:
        return gpu_hpi.prepare_pairs(
            self.prev, self.recent, self.y, self.group if group else None, n_periods=T, backend=CPU
        )


def _among(rng: np.random.Generator, periods: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A chain through `periods` plus n random pairs i < j among them."""
    a, b = rng.choice(periods, n), rng.choice(periods, n)
    while (same := a == b).any():
        b[same] = rng.choice(periods, int(same.sum()))
    return np.concatenate([periods[:-1], np.minimum(a, b)]), np.concatenate([periods[1:], np.maximum(a, b)])


def make_data(seed: int = 0) -> Data:
    """Group 10: all periods well connected; group 20: period RARE touched only by three pairs, placed at
    positions of fold 0 (of FOLDS); group 30: period EMPTY touched by no pair. A few NaN y and prev == recent
    pairs (invalid)."""
    rng = np.random.default_rng(seed)
    every = np.arange(T)
    beta = np.cumsum(rng.normal(0.01, 0.03, (len(LABELS), T)), axis=1)
    parts = []
    for k, (label, n, periods) in enumerate(
        [(10, 300, every), (20, 220, np.setdiff1d(every, [RARE])), (30, 200, np.setdiff1d(every, [EMPTY]))]
    ):
        i, j = _among(rng, periods, n)
        parts.append((i, j, np.full(len(i), label), beta[k]))
    prev = np.concatenate([p[0] for p in parts])
    recent = np.concatenate([p[1] for p in parts])
    group = np.concatenate([p[2] for p in parts])
    y = np.concatenate([b[j] - b[i] for i, j, _, b in parts]) + rng.normal(0, 0.02, len(prev))
    order = rng.permutation(len(y))
    prev, recent, group, y = prev[order], recent[order], group[order], y[order]
    bad = rng.choice(len(y), 12, replace=False)
    y[bad[:6]] = np.nan
    prev[bad[6:]] = recent[bad[6:]]

    # the three pairs of group 20 through RARE, at positions of fold 0
    special = (np.array([RARE - 1, RARE, RARE - 2]), np.array([RARE, RARE + 2, RARE]))
    n = len(y) + 3
    fold0 = [p for p in range(n) if ref_fold(p, FOLDS) == 0]
    rare_positions = np.sort(rng.choice(fold0, 3, replace=False))
    rest = np.setdiff1d(np.arange(n), rare_positions)
    out_prev, out_recent = np.zeros(n, np.int64), np.zeros(n, np.int64)
    out_y, out_group = np.zeros(n), np.zeros(n, np.int64)
    out_prev[rest], out_recent[rest], out_y[rest], out_group[rest] = prev, recent, y, group
    out_prev[rare_positions], out_recent[rare_positions] = special
    out_group[rare_positions] = 20
    b20 = beta[1]
    out_y[rare_positions] = b20[special[1]] - b20[special[0]] + rng.normal(0, 0.02, 3)
    return Data(out_prev, out_recent, out_y, out_group, rare_positions)


@pytest.fixture(scope="module")
def data() -> Data:
    return make_data()


def fit_cpu(method: str, base: int) -> Refit:
    """The refits of the diagnostics with the default options of fit_index (base: the result's)."""
    return Refit(gpu_hpi.MethodOptions(name=method))


def estimate(data: Data, mask: np.ndarray, n_periods: int, base: int, method: str, group: bool = True) -> Any:
    return gpu_hpi.estimate_index(
        data.prev[mask],
        data.recent[mask],
        data.y[mask],
        data.group[mask] if group else None,
        n_periods=n_periods,
        backend="cpu",
        base_period=base,
        method=method,
    )


def rows_like(fitted: gpu_hpi.IndexResult, groups: np.ndarray, n_periods: int) -> np.ndarray:
    """(G, n_periods) log index of `fitted` in the order of `groups` (NaN for groups it lacks)."""
    out = np.full((len(groups), n_periods), np.nan)
    labels = [str(g) for g in fitted.groups]
    for k, g in enumerate(groups):
        if str(g) in labels:
            out[k, : fitted.log_index.shape[1]] = fitted.log_index[labels.index(str(g))]
    return out


# --------------------------------------------------------------------------------------------------
# volatility and smoothing


@pytest.fixture(scope="module")
def result(data: Data) -> gpu_hpi.IndexResult:
    return estimate(data, np.ones(len(data.y), bool), T, 0, "bmn")


def test_fixture_shapes(data: Data, result: gpu_hpi.IndexResult) -> None:
    """The fixture has what the tests rely on: a NaN period in group 30, RARE identified in group 20."""
    assert [str(g) for g in result.groups] == ["10", "20", "30", "ALL"]
    assert np.isnan(result.log_index[2, EMPTY]) and np.isfinite(np.delete(result.log_index[2], EMPTY)).all()
    assert np.isfinite(result.log_index[[0, 1, 3]]).all()
    touches = (data.group == 20) & ((data.prev == RARE) | (data.recent == RARE))
    assert sorted(np.flatnonzero(touches)) == sorted(data.rare_positions)


def ref_volatility(index: np.ndarray, window: int) -> np.ndarray:
    g, t = index.shape
    out = np.full((g, t), np.nan)
    for r in range(g):
        change = [np.nan] + [100.0 * (index[r, s] / index[r, s - 1] - 1.0) for s in range(1, t)]
        for s in range(t):
            if s - window + 1 < 1:
                continue
            values = change[s - window + 1 : s + 1]
            if all(np.isfinite(values)):
                out[r, s] = np.std(values, ddof=1)
    return out


@pytest.mark.parametrize("window", [2, 3, 5])
def test_volatility_matches_a_plain_loop(result: gpu_hpi.IndexResult, window: int) -> None:
    got = volatility(result, window)
    want = ref_volatility(result.index, window)
    assert got.shape == result.log_index.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.isnan(got[:, :window]).all() and np.isfinite(got[0, window:]).all()
    # the NaN period of group 30 blanks every window holding the change into or out of it
    assert np.isnan(got[2, EMPTY : EMPTY + window + 1]).all()
    assert np.isfinite(got[2, EMPTY + window + 1 :]).all()
    changes = period_changes(result)
    np.testing.assert_allclose(changes[:, 1:], 100 * (result.index[:, 1:] / result.index[:, :-1] - 1), rtol=1e-12)
    assert np.isnan(changes[:, 0]).all()


@pytest.mark.parametrize("window", [1, 0, -3])
def test_volatility_window_too_small(result: gpu_hpi.IndexResult, window: int) -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="volatility window"):
        volatility(result, window)


def ref_smooth(index: np.ndarray, window: int) -> np.ndarray:
    g, t = index.shape
    half = window // 2
    out = np.full((g, t), np.nan)
    for r in range(g):
        for s in range(t):
            values = [v for v in index[r, max(0, s - half) : min(t, s + half + 1)] if np.isfinite(v)]
            if values:
                out[r, s] = sum(values) / len(values)
    return out


@pytest.mark.parametrize("window", [3, 5, 25])
def test_smooth_matches_a_plain_loop(result: gpu_hpi.IndexResult, window: int) -> None:
    got = smooth(result, window)
    want = ref_smooth(result.index, window)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert np.isfinite(got).all()  # the NaN period of group 30 is skipped, not propagated
    # the ends average the shorter, still centred windows
    np.testing.assert_allclose(got[0, 0], result.index[0, : min(T, window // 2 + 1)].mean(), rtol=1e-12)
    np.testing.assert_allclose(got[0, -1], result.index[0, max(0, T - 1 - window // 2) :].mean(), rtol=1e-12)


@pytest.mark.parametrize("window", [0, 1, 2, 4, 6])
def test_smooth_window_must_be_odd_and_at_least_3(result: gpu_hpi.IndexResult, window: int) -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="odd"):
        smooth(result, window)


# --------------------------------------------------------------------------------------------------
# revision


@dataclass
class RefRevision:
    mean: np.ndarray
    median: np.ndarray
    count: np.ndarray
    overall_mean: np.ndarray
    overall_median: np.ndarray
    vintages: list[int]


def ref_revision(data: Data, base: int, method: str, groups: np.ndarray) -> RefRevision:
    vintages = list(range(base + 1, T))
    levels = []
    for v in vintages:
        fitted = estimate(data, data.recent <= v, v + 1, base, method)
        level = np.full((len(groups), T), np.nan)
        level[:, : v + 1] = 100.0 * np.exp(rows_like(fitted, groups, v + 1))
        levels.append(level)
    return ref_revision_stats(levels, vintages)


def ref_revision_stats(levels: list[np.ndarray], vintages: list[int]) -> RefRevision:
    """The revision statistics by plain loops from each vintage's (G, T) index level."""
    n_groups, n_periods = levels[0].shape if levels else (0, 0)
    per_cell: dict[tuple[int, int], list[float]] = {}
    per_group: dict[int, list[float]] = {k: [] for k in range(n_groups)}
    for a, b in itertools.pairwise(levels):
        for k in range(n_groups):
            for t in range(n_periods):
                d = b[k, t] - a[k, t]
                if np.isfinite(d):
                    per_cell.setdefault((k, t), []).append(float(d))
                    per_group[k].append(float(d))
    shape = (n_groups, n_periods)
    mean, median, count = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, np.int64)
    for (k, t), values in per_cell.items():
        mean[k, t], median[k, t], count[k, t] = np.mean(values), np.median(values), len(values)
    overall_mean = np.array([np.mean(v) if v else np.nan for v in per_group.values()])
    overall_median = np.array([np.median(v) if v else np.nan for v in per_group.values()])
    return RefRevision(mean, median, count, overall_mean, overall_median, vintages)


@pytest.mark.parametrize("method, base", [("bmn", 0), ("bmn", 2), ("case_shiller", 1)])
def test_revision_matches_explicit_refits(data: Data, method: str, base: int) -> None:
    pairs = data.pairs()
    table = gpu_hpi.build_cell_table(pairs, CPU)
    result = gpu_hpi.fit_index(table, base_period=base, backend="cpu", method=method)
    assert result.solver_info["groups"]["method"] == method
    rev = revision(table, fit_cpu(method, base), result)
    want = ref_revision(data, base, method, result.groups)

    assert rev.vintages == want.vintages == list(range(base + 1, T))
    np.testing.assert_array_equal(rev.count, want.count)
    for name in ("mean", "median", "overall_mean", "overall_median"):
        got, exp = getattr(rev, name), getattr(want, name)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(exp), err_msg=name)
        np.testing.assert_allclose(got, exp, rtol=0, atol=1e-9, err_msg=name)

    # the base period is never revised; a period t is revised between vintages t..T-1 (not before it exists)
    np.testing.assert_array_equal(rev.mean[:, base], 0.0)
    for t in range(base + 1, T):
        assert rev.count[0, t] == T - 1 - t
    assert rev.count[0, base] == len(rev.vintages) - 1
    assert (rev.count[:, T - 1] == 0).all() and np.isnan(rev.mean[:, T - 1]).all()
    assert (rev.count[2, EMPTY] == 0) and np.isnan(rev.median[2, EMPTY])
    assert np.isfinite(rev.overall_mean).all() and (np.abs(rev.mean[0, base + 1 : T - 1]) > 0).any()


def test_revision_with_the_base_in_the_last_period(data: Data) -> None:
    """No vintage after the base: no revisions, all NaN, counts 0."""
    table = gpu_hpi.build_cell_table(data.pairs(), CPU)
    result = gpu_hpi.fit_index(table, base_period=T - 1, backend="cpu")
    rev = revision(table, fit_cpu("bmn", T - 1), result)
    assert rev.vintages == []
    assert (rev.count == 0).all() and np.isnan(rev.mean).all() and np.isnan(rev.overall_median).all()


def random_cells(seed: int, t: int = 40) -> gpu_hpi.CellTable:
    """Seven groups over t periods: three plain ones, one whose period 7 no pair touches, one whose
    halves join only at vintage 30, a thin one (skipped in the early vintages), and one sold from
    period 10 on but for the pairs 0 -> 25 and 6 -> 25, which tie it to periods 0 and 6 then."""
    rng = np.random.default_rng(seed)
    parts = []
    for g, n in enumerate((3000, 1500, 800, 800, 800, 120, 500)):
        i = rng.integers(0, t - 1, n)
        j = np.minimum(i + 1 + rng.geometric(0.1, n), t - 1)
        keep = {3: (i != 7) & (j != 7), 4: (i >= 20) | (j < 20), 6: i >= 10}.get(g, np.ones(n, bool))
        i, j = i[keep], j[keep]
        if g == 4:
            i, j = np.append(i, 5), np.append(j, 30)
        if g == 6:
            i, j = np.append(i, [0, 6]), np.append(j, [25, 25])
        parts.append((np.full(len(i), g), i, j))
    group, prev, recent = (np.concatenate(a) for a in zip(*parts, strict=True))
    beta = np.cumsum(rng.normal(0.005, 0.02, (7, t)), axis=1)
    y = beta[group, recent] - beta[group, prev] + rng.normal(0, 0.1, len(group))
    return gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=t, backend=CPU), CPU)


@pytest.mark.parametrize("seed, base, batch", [(1, 0, None), (2, 6, None), (3, 0, 2)])
def test_default_diagnostics_equal_a_fit_per_vintage(
    seed: int, base: int, batch: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A default run's diagnostics (diagnostics.csv and the summary's revision) on random tables
    against the straightforward computation: fit_index on each truncated table, and plain loops
    over its index levels (batch: the vintages' systems built for that many groups at a time)."""
    from gpu_hpi.analysis import vintages
    from gpu_hpi.app.report import run_diagnostics
    from gpu_hpi.config import DiagnosticsConfig

    table = random_cells(seed)
    t = table.n_periods
    if batch:
        monkeypatch.setattr(vintages, "VINTAGE_NUMBERS", 4 * batch * t * t)
    result = gpu_hpi.fit_index(table, base_period=base, backend=CPU)
    out = run_diagnostics(DiagnosticsConfig(), result, table, None, Refit(), CPU)

    levels = []
    for v in range(base + 1, t):
        fitted = gpu_hpi.fit_index(table.truncate(v), base_period=base, backend=CPU)
        assert [str(g) for g in fitted.groups] == [str(g) for g in result.groups]
        level = np.full(result.log_index.shape, np.nan)
        level[:, : v + 1] = 100.0 * np.exp(fitted.log_index)
        levels.append(level)
    want = ref_revision_stats(levels, list(range(base + 1, t)))
    shape = result.log_index.shape
    np.testing.assert_array_equal(out.frame["n_revisions"].to_numpy().reshape(shape), want.count)
    for column, expected in (
        ("revision_mean", want.mean),
        ("revision_median", want.median),
        ("volatility", ref_volatility(result.index, 3)),
    ):
        got = out.frame[column].to_numpy().reshape(shape)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=column)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, err_msg=column)
    summary = out.summary["revision"]
    assert summary["vintages"] == t - base - 1
    for name, expected in (("mean", want.overall_mean), ("median", want.overall_median)):
        got = np.array([np.nan if v is None else v for v in summary[name].values()])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9, err_msg=name)
    # the cases the tables hold: every region revised, but the period never sold never, the thin
    # region only once it has enough pairs, the late one from vintage 25 on
    assert np.isfinite(want.mean[:, base + 1 : t - 2]).any(axis=1).all() and want.count[3, 7] == 0
    assert want.count[5, base + 1] < want.count[0, base + 1] and 0 < want.count[6, 12] < want.count[0, 12]


def test_nan_median_is_numpys() -> None:
    """Bit for bit np.nanmedian over the first axis: odd and even counts, ties, all-NaN columns."""
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(size=(31, 7, 9)), 1)
    a[rng.random(a.shape) < 0.4] = np.nan
    a[:, 2] = np.nan
    a[:-1, 3, 4] = np.nan
    a[1:, 4, 5] = 2.5
    with pytest.warns(RuntimeWarning):
        want = np.nanmedian(a, axis=0)
    np.testing.assert_array_equal(nan_median(a), want)
    assert nan_median(a[:0]).shape == (7, 9) and np.isnan(nan_median(a[:0])).all()


# --------------------------------------------------------------------------------------------------
# accuracy


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


# --------------------------------------------------------------------------------------------------
# the long frame of diagnostics.csv


def test_diagnostics_frame(data: Data, result: gpu_hpi.IndexResult) -> None:
    table = gpu_hpi.build_cell_table(data.pairs(), CPU)
    vol = volatility(result, 3)
    rev = revision(table, fit_cpu("bmn", 0), result)
    frame = diagnostics_frame(result, vol, rev)
    assert list(frame.columns) == [
        "group",
        "period",
        "change_pct",
        "volatility",
        "revision_mean",
        "revision_median",
        "n_revisions",
    ]
    assert len(frame) == 4 * T
    assert frame["group"].tolist() == [g for g in ("10", "20", "30", "ALL") for _ in range(T)]
    assert frame["period"].tolist() == [str(t) for t in range(T)] * 4
    row = frame[(frame["group"] == "20") & (frame["period"] == "5")].iloc[0]
    assert row["volatility"] == vol[1, 5] and row["revision_median"] == rev.median[1, 5]
    assert row["n_revisions"] == rev.count[1, 5]
    np.testing.assert_array_equal(frame["change_pct"].to_numpy(), period_changes(result).ravel())
    without = diagnostics_frame(result, vol, None)
    assert list(without.columns) == ["group", "period", "change_pct", "volatility"]
