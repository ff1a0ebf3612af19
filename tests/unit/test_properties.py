"""Property tests: chunk additivity, normal vs LSQR agreement, invariance to the order of the pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import Problem, assert_tables_equal

import gpu_hpi

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = gpu_hpi.resolve_backend("cpu")
SETTINGS = settings(max_examples=30, deadline=None)  # derandomized under CI by hypothesis' "ci" profile


@st.composite
def problems(draw: st.DrawFn, *, invalid: bool | None = None) -> Problem:
    """Small random problems: 2-10 periods, 1-4 groups, 1-80 pairs, optionally with invalid pairs."""
    seed = draw(st.integers(0, 2**32 - 1))
    t = draw(st.integers(2, 10))
    n_groups = draw(st.integers(1, 4))
    n = draw(st.integers(1, 80))
    with_invalid = draw(st.booleans()) if invalid is None else invalid
    rng = np.random.default_rng(seed)
    prev = rng.integers(0, t - 1, size=n)
    recent = prev + 1 + (rng.integers(0, 2**31, size=n) % (t - 1 - prev))
    gid = rng.choice(np.array([3, 17, 40, 41])[:n_groups], size=n)
    beta = np.cumsum(rng.normal(0, 0.05, size=t))
    y = beta[recent] - beta[prev] + rng.normal(0, 0.05, size=n)
    missing = np.zeros(n, dtype=bool)
    if with_invalid:
        bad = rng.random(n) < 0.15
        kind = rng.integers(0, 4, size=n)
        missing = bad & (kind == 0)
        missing[0] = False  # at least one group (no groups at all: see test_engine.test_all_group_ids_missing)
        prev = np.where(bad & (kind == 1), -1, prev)
        recent = np.where(bad & (kind == 2), prev, recent)
        y = np.where(bad & (kind == 3), np.nan, y)
    return Problem(prev, recent, y, gid, missing, t, sorted(set(gid.tolist())))


def table_of(p: Problem) -> gpu_hpi.CellTable:
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, backend=CPU)
    return gpu_hpi.build_cell_table(pairs, CPU)


def fit(p: Problem, **options: object) -> gpu_hpi.IndexResult:
    return gpu_hpi.estimate_index(
        p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, backend=CPU, min_pairs=1, **options
    )


@SETTINGS
@given(p=problems(), cuts=st.lists(st.floats(0, 1), max_size=4), seed=st.integers(0, 2**32 - 1))
def test_tables_of_chunks_add_up(p: Problem, cuts: list[float], seed: int) -> None:
    order = np.random.default_rng(seed).permutation(p.n_pairs)
    bounds = [0, *sorted(int(c * p.n_pairs) for c in cuts), p.n_pairs]
    parts = [table_of(p.take(order[a:b])) for a, b in itertools.pairwise(bounds)]
    whole = table_of(p)
    assert_tables_equal(gpu_hpi.merge_tables(parts), whole, rtol=1e-12)
    assert sum(t.n_pairs for t in parts) == whole.n_pairs


@SETTINGS
@given(p=problems(), base=st.integers(0, 9))
def test_normal_and_lsqr_agree(p: Problem, base: int) -> None:
    base %= p.n_periods
    normal = fit(p, base_period=base)
    lsqr = fit(p, base_period=base, solver="lsqr")
    np.testing.assert_array_equal(np.isnan(lsqr.log_index), np.isnan(normal.log_index))
    np.testing.assert_allclose(lsqr.log_index, normal.log_index, atol=1e-7, rtol=0, equal_nan=True)
    np.testing.assert_allclose(lsqr.se, normal.se, rtol=1e-5, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(lsqr.n_used, normal.n_used)


@SETTINGS
@given(p=problems(), seed=st.integers(0, 2**32 - 1))
def test_index_does_not_depend_on_the_order_of_pairs(p: Problem, seed: int) -> None:
    shuffled = p.take(np.random.default_rng(seed).permutation(p.n_pairs))
    a, b = fit(p), fit(shuffled)
    np.testing.assert_allclose(b.log_index, a.log_index, atol=1e-12, rtol=0, equal_nan=True)
    np.testing.assert_allclose(b.se, a.se, rtol=1e-9, atol=1e-15, equal_nan=True)
    np.testing.assert_array_equal(b.period_pairs, a.period_pairs)
    np.testing.assert_array_equal(b.n_used, a.n_used)
    assert table_of(shuffled).dropped == table_of(p).dropped


@SETTINGS
@given(p=problems(invalid=False), shift=st.lists(st.floats(-1, 1), min_size=10, max_size=10))
def test_adding_a_trend_to_y_shifts_the_index_by_it(p: Problem, shift: list[float]) -> None:
    """y + d[j] - d[i] moves the log index by d - d[base] where identified; the residuals stay."""
    d = np.asarray(shift[: p.n_periods])
    moved = Problem(p.prev, p.recent, p.y + d[p.recent] - d[p.prev], p.gid, p.missing, p.n_periods, p.labels)
    a, b = fit(p), fit(moved)
    np.testing.assert_allclose(b.log_index, a.log_index + (d - d[0]), atol=1e-9, rtol=0, equal_nan=True)
    np.testing.assert_allclose(b.sigma2, a.sigma2, rtol=1e-6, atol=1e-12, equal_nan=True)
