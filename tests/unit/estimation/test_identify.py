"""Identification (estimation/identify.py) through estimate_index, against the reference's
union-find: groups with too few pairs skipped, periods without pairs or not connected to the base
period listed and warned of, pairs outside the base period's component kept out of the fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import estimate, reference
from reference import (
    Problem,
    assert_matches_reference,
    random_problem,
)

import gpu_hpi

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def test_min_pairs_skips_small_groups(problem: Problem) -> None:
    with pytest.warns(gpu_hpi.IdentificationWarning, match="fewer than 12 pairs skipped"):
        result = estimate(problem)
    small = list(result.groups).index(99999.0)
    assert result.skipped.tolist() == [False, False, False, True, False]
    assert np.isnan(result.log_index[small]).all() and np.isnan(result.se[small]).all()
    assert np.isnan(result.index[small]).all()
    assert result.n_used[small] == 0 and result.n_params[small] == 0
    assert np.isnan(result.sigma2[small]) and np.isnan(result.r2[small])
    assert 0 < result.n_pairs[small] < problem.n_periods
    # skipped groups are not listed as unidentified periods
    assert 99999.0 not in set(result.unidentified["group"])

    kept = estimate(problem, min_pairs=1)
    assert not kept.skipped.any()
    assert np.isfinite(kept.log_index[small]).sum() >= 2
    assert_matches_reference(kept, reference(problem, min_pairs=1))

    everything_skipped = estimate(problem, min_pairs=10_000)
    assert everything_skipped.skipped.all() and np.isnan(everything_skipped.log_index).all()


def test_unidentified_periods_warn_and_are_listed(problem: Problem) -> None:
    with pytest.warns(gpu_hpi.IdentificationWarning, match="not identified"):
        result = estimate(problem)
    ref = reference(problem)
    missing = np.isnan(ref.log_index) & ~ref.skipped[:, None]
    frame = result.unidentified
    assert list(frame.columns) == ["group", "period", "reason"]
    assert len(frame) == int(missing.sum())
    g, t = np.nonzero(missing)
    want_reason = np.where(ref.period_pairs[g, t] == 0, "no pairs", "not connected to the base period")
    got = sorted(zip(frame["group"], frame["period"], frame["reason"], strict=True))
    want = sorted(zip([ref.groups[k] for k in g], t.tolist(), want_reason.tolist(), strict=True))
    assert got == want
    assert {"no pairs", "not connected to the base period"} <= set(frame["reason"])


def test_all_identified_does_not_warn(connected: Problem) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = estimate(connected, group=None)
    assert np.isfinite(result.log_index).all() and len(result.unidentified) == 0


def test_pairs_outside_the_base_component_do_not_enter_the_fit() -> None:
    p = random_problem(np.random.default_rng(4))
    ref = reference(p)
    result = estimate(p)
    split = list(result.groups).index(41190.0)  # the group with two components
    assert 0 < result.n_used[split] < result.n_pairs[split]
    assert result.n_params[split] == np.isfinite(result.log_index[split]).sum() - 1
    # move the y of the pairs in the other component: nothing of the group's fit changes
    other = ~np.isnan(p.group_float()) & (p.gid == 41190) & (p.prev >= 0) & (p.recent < p.n_periods)
    other &= np.isnan(ref.log_index[split][np.clip(p.prev, 0, p.n_periods - 1)])
    assert other.any()
    p.y[other] += 5.0
    moved = estimate(p)
    np.testing.assert_array_equal(moved.log_index[split], result.log_index[split])
    np.testing.assert_array_equal(moved.se[split], result.se[split])
    assert moved.sigma2[split] == result.sigma2[split] and moved.r2[split] == result.r2[split]
