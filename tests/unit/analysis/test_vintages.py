"""The vintages from one pass over the cells (gpu_hpi.analysis.vintages) against the refits it replaces:
fit_index on each truncated table, one vintage at a time, and scipy's connected components per
vintage."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
from helpers import noisy_short_precise_long

import gpu_hpi
from gpu_hpi.analysis import vintages
from gpu_hpi.analysis.refit import Refit
from gpu_hpi.analysis.revision import revision
from gpu_hpi.analysis.vintages import (
    first_connected,
    vintage_blocks,
    vintage_identifications,
    vintage_log_index,
)
from gpu_hpi.estimation.identify import identify

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = gpu_hpi.resolve_backend("cpu")
T = 14


def random_table(seed: int, prices: bool = False) -> gpu_hpi.CellTable:
    """Four groups: a dense one, one with a period no pair touches, one whose periods form two
    islands until a late bridging pair, and a thin one skipped in early vintages."""
    rng = np.random.default_rng(seed)
    parts = []
    for g, n in ((0, 400), (1, 300), (2, 250), (3, 40)):
        i = rng.integers(0, T - 1, n)
        j = np.minimum(i + 1 + rng.geometric(0.3, n), T - 1)
        if g == 1:  # period 5 never sold
            keep = (i != 5) & (j != 5)
            i, j = i[keep], j[keep]
        if g == 2:  # periods 0..6 and 7..13 apart, then one pair 3 -> 12 joins them at vintage 12
            keep = (i >= 7) | (j <= 6)
            i, j = np.append(i[keep], 3), np.append(j[keep], 12)
        parts.append((np.full(i.shape, g), i, j))
    group, prev, recent = (np.concatenate(a) for a in zip(*parts, strict=True))
    beta = np.cumsum(rng.normal(0.01, 0.02, (4, T)), axis=1)
    y = beta[group, recent] - beta[group, prev] + rng.normal(0, 0.05 + 0.01 * (recent - prev))
    p0 = p1 = None
    if prices:
        p0 = np.exp(rng.normal(12, 0.5, y.shape))
        p1 = p0 * np.exp(y)
    pairs = gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=T, backend=CPU, price_prev=p0, price_recent=p1)
    return gpu_hpi.build_cell_table(pairs, CPU)


def refit_vintages(
    table: gpu_hpi.CellTable, base: int, method: str | gpu_hpi.MethodOptions, min_pairs: int | None
) -> np.ndarray:
    t = table.n_periods
    out = np.full((t - base - 1, table.n_groups, t), np.nan)
    for k, v in enumerate(range(base + 1, t)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
            fitted = gpu_hpi.fit_index(
                table.truncate(v), base_period=base, backend=CPU, method=method, min_pairs=min_pairs, pooled=False
            )
        out[k, :, : v + 1] = fitted.log_index
    return out


@pytest.mark.parametrize("base", [0, 4, T - 2])
def test_first_connected_matches_components_per_vintage(base: int) -> None:
    table = random_table(1)
    first = first_connected(table, base)
    for v in range(T):
        part = table.truncate(v)
        t = v + 1
        graph = scipy.sparse.coo_matrix(
            (np.ones(part.n_cells), (part.group * t + part.prev, part.group * t + part.recent)),
            shape=(table.n_groups * t, table.n_groups * t),
        )
        _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
        labels = labels.reshape(table.n_groups, t)
        if v >= base:
            want = labels == labels[:, base : base + 1]
            np.testing.assert_array_equal(first[:, :t] <= v, want, err_msg=f"vintage {v}")
    assert (first[:, base] == 0).all()
    assert first[1, 5] == T  # never sold: never connected
    if base <= 6:
        assert first[2, 10] == 12  # the island joins with the bridging pair's later period


@pytest.mark.parametrize("min_pairs", [None, 1, 60])
def test_vintage_identifications_equal_identify_per_vintage(min_pairs: int | None) -> None:
    table = random_table(2)
    for k, ident in enumerate(vintage_identifications(table, 3, min_pairs)):
        v = 4 + k
        part = table.truncate(v)
        want = identify(part, 3, v + 1 if min_pairs is None else min_pairs)
        np.testing.assert_array_equal(ident.identified, want.identified, err_msg=f"vintage {v}")
        np.testing.assert_array_equal(ident.skipped, want.skipped)
        np.testing.assert_array_equal(ident.n_pairs, want.n_pairs)


@pytest.mark.parametrize(
    "method, base, min_pairs",
    [("bmn", 0, None), ("bmn", 5, 30), ("case_shiller", 0, None), ("case_shiller", 2, 1), ("arithmetic", 1, None)],
)
def test_vintages_equal_one_refit_per_vintage(method: str, base: int, min_pairs: int | None) -> None:
    table = random_table(3, prices=method == "arithmetic")
    got = vintage_log_index(table, base, gpu_hpi.MethodOptions(name=method), min_pairs)
    want = refit_vintages(table, base, method, min_pairs)
    assert got.shape == want.shape == (T - base - 1, 4, T)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # the thin group is skipped (all NaN) in its early vintages only, under the default min_pairs
    if min_pairs is None:
        assert np.isnan(got[0, 3]).all() and np.isfinite(got[-1, 3, base])
    assert np.isfinite(got).sum() > 0.5 * got.size * (T - base) / (2 * T)


@pytest.mark.parametrize("quadratic", [False, True])
def test_case_shiller_vintages_with_weight_zero_cells_equal_refits(quadratic: bool) -> None:
    """Noisy short holdings, precise long ones: stage 2 gives long holdings weight 0, and period 25,
    sold only with long holdings, is not identified under the linear stage 2's weights; each
    vintage as its refit, with the linear and the quadratic stage 2."""
    prev, recent, y = noisy_short_precise_long(t=30)
    keep = ~(((prev == 25) | (recent == 25)) & (recent - prev < 20))
    prev, recent, y = prev[keep], recent[keep], y[keep]
    group = np.arange(prev.size) % 2
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=30, backend=CPU), CPU)
    method = gpu_hpi.MethodOptions(name="case_shiller", quadratic=quadratic)
    got = vintage_log_index(table, 3, method)
    want = refit_vintages(table, 3, method, None)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert np.isfinite(got[-1]).sum() > 40
    assert np.isnan(got[-1, :, 25]).any() != quadratic  # the period the weights leave out


def test_no_vintage_after_the_base() -> None:
    assert vintage_log_index(random_table(4), T - 1).shape == (0, 4, T)


@pytest.mark.parametrize("groups, pooled", [(True, True), (False, True), (True, False)])
def test_refit_tables_are_the_rows_of_the_result(groups: bool, pooled: bool) -> None:
    table = random_table(5)
    result = gpu_hpi.fit_index(table, backend=CPU, groups=groups, pooled=pooled)
    refit = Refit(groups=groups, pooled=pooled)
    # the last vintage is the full fit, row by row
    last = np.concatenate([vintage_log_index(tab, 0)[-1] for tab in refit.tables(table)])
    np.testing.assert_allclose(last, result.log_index, rtol=0, atol=1e-12)
    assert revision(table, refit, result).mean.shape == result.log_index.shape
    other = Refit(groups=True, pooled=not pooled if groups else True)
    with pytest.raises(ValueError, match="rows"):
        revision(table, other, result)


@pytest.mark.parametrize("method, min_pairs", [("bmn", None), ("bmn", 150), ("case_shiller", None)])
def test_vintage_blocks_are_the_stack_a_batch_at_a_time(
    method: str, min_pairs: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocks, a group or two at a time, are vintage_log_index's stack bit for bit; a group
    the last vintage skips is never passed (min_pairs 150 skips the thin group 3)."""
    monkeypatch.setattr(vintages, "VINTAGE_NUMBERS", 4 * 2 * T * T)  # two groups a batch
    table = random_table(7)
    want = vintage_log_index(table, 2, gpu_hpi.MethodOptions(name=method), min_pairs)
    got = np.full_like(want, np.nan)
    passed: list[int] = []

    def gather(rows: np.ndarray, block: np.ndarray) -> None:
        assert block.shape == (len(rows), T - 3, T)
        got[:, rows] = block.transpose(1, 0, 2)
        passed.extend(rows.tolist())

    vintage_blocks(table, 2, gather, gpu_hpi.MethodOptions(name=method), min_pairs)
    np.testing.assert_array_equal(got, want)
    assert sorted(passed) == ([0, 1, 2] if min_pairs == 150 else [0, 1, 2, 3])
    assert len(passed) == len(set(passed))


def test_a_group_estimated_early_and_skipped_at_the_end() -> None:
    """With min_pairs None vintage v asks for v + 1 pairs: 8 pairs sold again by period 5 pass
    at vintages 3 to 7 (the tree must still cover them) and fail from vintage 8 on; the OLS
    vintages, as before, solve only the groups the last vintage estimates."""
    table = random_table(2)
    prev, recent = np.array([0, 1, 2, 0, 3, 1, 4, 2]), np.array([1, 3, 4, 5, 5, 2, 5, 3])
    extra = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(prev, recent, np.zeros(8), np.full(8, 4), n_periods=T, backend=CPU), CPU
    )
    both = table + extra
    for k, ident in enumerate(vintage_identifications(both, 0, None)):
        want = identify(both.truncate(k + 1), 0, k + 2)
        np.testing.assert_array_equal(ident.identified[:, : k + 2], want.identified, err_msg=f"vintage {k + 1}")
        np.testing.assert_array_equal(ident.skipped, want.skipped)
    assert not vintage_identifications(both, 0, None)[6].skipped[4]
    assert np.isnan(vintage_log_index(both, 0)[:, 4]).all()
