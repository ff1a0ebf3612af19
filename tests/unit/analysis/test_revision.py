"""Revision (analysis/revision.py) against explicit refits: estimate_index on the pairs of each
vintage, the statistics by plain loops; numpy's nanmedian; the vintages' frame against fit_index on
each truncated data set."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostics_reference import (
    CPU,
    EMPTY,
    PAIRS_T,
    Data,
    RefRevision,
    T,
    estimate,
    fit_cpu,
    fit_pairs,
    random_pairs,
    ref_revision_stats,
    rows_like,
)

import gpu_hpi
from gpu_hpi.analysis.refit import Refit
from gpu_hpi.analysis.revision import nan_median, revision, vintage_indices, vintages_frame
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def ref_revision(data: Data, base: int, method: str, groups: np.ndarray) -> RefRevision:
    vintages = list(range(base + 1, T))
    levels = []
    for v in vintages:
        fitted = estimate(data, data.recent <= v, v + 1, base, method)
        level = np.full((len(groups), T), np.nan)
        level[:, : v + 1] = 100.0 * np.exp(rows_like(fitted, groups, v + 1))
        levels.append(level)
    return ref_revision_stats(levels, vintages)


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


def test_a_vintage_without_a_value_leaves_the_last_one_standing() -> None:
    """A region skipped in a vintage (too few pairs then) has no values there: the next vintage
    revises its last estimate (the changes across the gap were left out before)."""
    from diagnostics_reference import ref_revision_stats

    from gpu_hpi.analysis.revision import revision_stats

    rng = np.random.default_rng(8)
    log_index = rng.normal(0, 0.1, (3, 9, 7))  # (groups, vintages, periods)
    log_index[rng.random(log_index.shape) < 0.3] = np.nan
    log_index[1, :, 0] = rng.normal(0, 0.1, 9)
    log_index[1, 3:6] = np.nan  # a region skipped in three successive vintages
    got = revision_stats(log_index)
    want = ref_revision_stats([100.0 * np.exp(log_index[:, v]) for v in range(9)], [])
    np.testing.assert_array_equal(got.count, want.count)
    for name in ("mean", "median", "overall_mean", "overall_median"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=0, atol=1e-9, err_msg=name)
    assert got.count[1, 0] == 5  # vintages 0-1, 1-2, 2-6 (across the gap), 6-7, 7-8


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


def test_vintages_frame_is_each_truncated_fit() -> None:
    group, prev, recent, y = random_pairs(3)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=PAIRS_T, backend=CPU), CPU)
    result = gpu_hpi.fit_index(table, backend=CPU, min_pairs=1)
    frame = vintages_frame(result, vintage_indices(table, Refit(MethodOptions(), 1, True, True), result))
    for v in (3, 9, PAIRS_T - 1):
        keep = recent <= v
        want = fit_pairs(group[keep], prev[keep], recent[keep], y[keep])
        got = frame[frame["vintage"] == str(v)]
        for g, name in enumerate(want.groups):
            series = got[got["group"] == str(name)].set_index("period")["log_index"]
            expected = want.log_index[g, : v + 1]
            finite = np.isfinite(expected)
            assert series.index.tolist() == [str(p) for p in np.arange(v + 1)[finite]]
            np.testing.assert_allclose(series.to_numpy(), expected[finite], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_revision_a_batch_at_a_time_is_the_revision_of_the_stack(
    data: Data, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken as the vintages are solved, a batch of groups at a time, the statistics are those of
    the whole (vintage, group, period) stack, bit for bit."""
    from gpu_hpi.analysis import vintages

    monkeypatch.setattr(vintages, "VINTAGE_NUMBERS", 4 * batch * T * T)
    table = gpu_hpi.build_cell_table(data.pairs(), CPU)
    result = gpu_hpi.fit_index(table, base_period=1, backend="cpu")
    refit = fit_cpu("bmn", 1)
    streamed = revision(table, refit, result)
    whole = revision(table, refit, result, vintage_indices(table, refit, result))
    for name in ("mean", "median", "count", "overall_mean", "overall_median"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(whole, name), err_msg=name)
    assert streamed.vintages == whole.vintages


def test_revision_does_not_hold_the_vintages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over many groups the revision's memory is that of a batch, not of the (vintage, group,
    period) stack that vintage_indices() holds."""
    import tracemalloc

    from gpu_hpi.analysis import vintages

    t, groups, n = 80, 150, 9_000  # 60 pairs a group over 80 periods: the stack outweighs the table
    rng = np.random.default_rng(5)
    prev = rng.integers(0, t - 1, n)
    recent = np.minimum(prev + 1 + rng.geometric(0.1, n), t - 1)
    group, y = np.arange(n) % groups, rng.normal(0.01 * (recent - prev), 0.05)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=t, backend=CPU), CPU)
    result = gpu_hpi.fit_index(table, backend=CPU, min_pairs=1, pooled=False)
    refit = Refit(MethodOptions(), 1, True, False)
    monkeypatch.setattr(vintages, "VINTAGE_NUMBERS", 4 * 4 * t * t)  # four groups a batch
    stack_bytes = (t - 1) * groups * t * 8
    tracemalloc.start()
    try:
        rev = revision(table, refit, result)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(rev.overall_mean).all()
    assert peak < stack_bytes / 2, (peak, stack_bytes)  # 4x the stack before


def test_revision_of_the_regions_with_the_most_pairs(data: Data) -> None:
    """regions=k: the k regions with the most pairs and the pooled index are studied, each exactly
    as in the study of every region; the others are left empty."""
    table = gpu_hpi.build_cell_table(data.pairs(), CPU)
    result = gpu_hpi.fit_index(table, base_period=1, backend="cpu")
    refit = fit_cpu("bmn", 1)
    every = revision(table, refit, result)
    pairs = np.bincount(table.group, weights=table.count, minlength=table.n_groups)
    largest = np.argsort(-pairs, kind="stable")[:2]
    some = revision(table, refit, result, regions=2)
    studied = np.zeros(len(result.groups), dtype=bool)
    studied[largest] = True
    studied[list(result.groups).index("ALL")] = True  # the pooled index: always
    assert table.n_groups > 2 and np.isfinite(every.overall_mean[~studied]).any()
    for name in ("mean", "median", "overall_mean", "overall_median"):
        np.testing.assert_array_equal(getattr(some, name)[studied], getattr(every, name)[studied], err_msg=name)
        assert np.isnan(getattr(some, name)[~studied]).all(), name
    assert (some.count[~studied] == 0).all()
