"""An independent float64 reference for the repeat-sales model, and random-problem generators (also
hypothesis' strategy of small problems, for the property tests).

Nothing here calls gpu_hpi: the reference validates the pairs, builds the explicit dense dummy matrix
of each group, finds the base period's connected component with a union-find, and solves with
numpy.linalg.lstsq. It is written for clarity, not speed (a few thousand pairs at most).

Model: pair k of group g has earlier period i < later period j and y = log(P_j / P_i);
y = beta_j - beta_i + e with beta_base = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import settings
from hypothesis import strategies as st

REASONS = ("missing_group", "period_out_of_range", "same_period", "prev_not_before_recent", "nonfinite_y")


# --------------------------------------------------------------------------------------------------
# validation


def is_missing(group: Any) -> np.ndarray:
    """(N,) bool: which group ids are missing (None / NaN / pd.NA)."""
    return np.asarray(pd.isna(np.asarray(group, dtype=object)), dtype=bool)


def drop_reasons(prev: np.ndarray, recent: np.ndarray, y: np.ndarray, group: Any, n_periods: int) -> list[str | None]:
    """Per pair, the first reason (in REASONS order) it is invalid for, or None when it is valid."""
    missing = is_missing(group) if group is not None else np.zeros(len(y), dtype=bool)
    out: list[str | None] = []
    for k in range(len(y)):
        i, j = int(prev[k]), int(recent[k])
        if missing[k]:
            out.append("missing_group")
        elif not (0 <= i < n_periods and 0 <= j < n_periods):
            out.append("period_out_of_range")
        elif i == j:
            out.append("same_period")
        elif i > j:
            out.append("prev_not_before_recent")
        elif not np.isfinite(y[k]):
            out.append("nonfinite_y")
        else:
            out.append(None)
    return out


def drop_counts(prev: np.ndarray, recent: np.ndarray, y: np.ndarray, group: Any, n_periods: int) -> dict[str, int]:
    """reason -> number of pairs dropped for it (only reasons with at least one pair)."""
    counts: dict[str, int] = {}
    for reason in drop_reasons(prev, recent, y, group, n_periods):
        if reason is not None:
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def valid_mask(prev: np.ndarray, recent: np.ndarray, y: np.ndarray, group: Any, n_periods: int) -> np.ndarray:
    return np.array([r is None for r in drop_reasons(prev, recent, y, group, n_periods)], dtype=bool)


# --------------------------------------------------------------------------------------------------
# one group


def base_component(prev: np.ndarray, recent: np.ndarray, n_periods: int, base: int) -> np.ndarray:
    """(T,) bool: the periods connected to `base` through the pairs (union-find over the pairs)."""
    parent = list(range(n_periods))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in zip(prev.tolist(), recent.tolist(), strict=True):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
    root = find(base)
    return np.array([find(t) == root for t in range(n_periods)], dtype=bool)


@dataclass
class GroupFit:
    """The reference fit of one group's valid pairs. Arrays are (T,), NaN where not identified."""

    log_index: np.ndarray
    se: np.ndarray
    identified: np.ndarray
    period_pairs: np.ndarray
    n_pairs: int
    n_used: int
    n_params: int
    ssr: float
    sigma2: float
    r2: float
    skipped: bool


def fit_group(
    prev: np.ndarray, recent: np.ndarray, y: np.ndarray, n_periods: int, base: int, min_pairs: int
) -> GroupFit:
    """OLS of one group's (valid) pairs by the explicit dense dummy matrix and numpy.linalg.lstsq."""
    t = n_periods
    prev = np.asarray(prev, dtype=np.int64)
    recent = np.asarray(recent, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    period_pairs = np.zeros(t, dtype=np.int64)
    for i, j in zip(prev.tolist(), recent.tolist(), strict=True):
        period_pairs[i] += 1
        period_pairs[j] += 1
    nan_t = np.full(t, np.nan)
    if n < min_pairs:
        return GroupFit(
            nan_t.copy(), nan_t.copy(), np.zeros(t, dtype=bool), period_pairs, n, 0, 0, np.nan, np.nan, np.nan, True
        )

    identified = base_component(prev, recent, t, base)
    inside = identified[prev]  # a pair is in the component iff its earlier period is
    z = np.zeros((int(inside.sum()), t))
    rows = np.arange(z.shape[0])
    z[rows, prev[inside]] = -1.0
    z[rows, recent[inside]] = 1.0
    yy = y[inside]
    columns = [p for p in range(t) if identified[p] and p != base]
    x = z[:, columns]
    n_used, n_params = x.shape

    log_index = nan_t.copy()
    se = nan_t.copy()
    log_index[base] = 0.0
    se[base] = 0.0
    if n_params:
        beta, *_ = np.linalg.lstsq(x, yy, rcond=None)
        log_index[columns] = beta
        resid = yy - x @ beta
    else:
        resid = yy
    ssr = float(resid @ resid)
    dof = n_used - n_params
    sigma2 = ssr / dof if dof > 0 else np.nan
    if n_params:
        se[columns] = np.sqrt(sigma2 * np.diag(np.linalg.inv(x.T @ x)))
    tss = float(yy @ yy)
    r2 = 1.0 - ssr / tss if tss > 0 else np.nan
    return GroupFit(log_index, se, identified, period_pairs, n, n_used, n_params, ssr, sigma2, r2, False)


# --------------------------------------------------------------------------------------------------
# all groups


@dataclass
class Reference:
    """The reference result, laid out like IndexResult: groups (sorted labels, then "ALL")."""

    groups: list[Any]
    log_index: np.ndarray
    se: np.ndarray
    period_pairs: np.ndarray
    n_pairs: np.ndarray
    n_used: np.ndarray
    n_params: np.ndarray
    ssr: np.ndarray
    sigma2: np.ndarray
    r2: np.ndarray
    skipped: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def index(self) -> np.ndarray:
        return 100.0 * np.exp(self.log_index)


def reference_index(
    prev: Any,
    recent: Any,
    y: Any,
    group: Any = None,
    *,
    n_periods: int,
    base_period: int = 0,
    min_pairs: int | None = None,
    groups: bool = True,
    pooled: bool = True,
) -> Reference:
    """Per-group indices (labels sorted, every non-missing label present even if all its pairs are
    invalid) and, with a group column, the pooled index "ALL" of all valid pairs of non-missing groups."""
    prev = np.asarray(prev)
    recent = np.asarray(recent)
    y = np.asarray(y, dtype=np.float64)
    t = n_periods
    min_pairs = t if min_pairs is None else min_pairs
    ok = valid_mask(prev, recent, y, group, t)
    fits: list[GroupFit] = []
    labels: list[Any] = []
    if group is None:
        labels = ["ALL"]
        fits = [fit_group(prev[ok], recent[ok], y[ok], t, base_period, min_pairs)]
    else:
        g = np.asarray(group, dtype=object)
        present = g[~is_missing(g)]
        if groups:
            for label in sorted(set(present.tolist())):
                sel = ok & (g == label)
                labels.append(label)
                fits.append(fit_group(prev[sel], recent[sel], y[sel], t, base_period, min_pairs))
        if pooled:
            labels.append("ALL")
            fits.append(fit_group(prev[ok], recent[ok], y[ok], t, base_period, min_pairs))

    def stack(name: str) -> np.ndarray:
        return np.array([getattr(f, name) for f in fits])

    return Reference(
        groups=labels,
        log_index=stack("log_index"),
        se=stack("se"),
        period_pairs=stack("period_pairs"),
        n_pairs=stack("n_pairs"),
        n_used=stack("n_used"),
        n_params=stack("n_params"),
        ssr=stack("ssr"),
        sigma2=stack("sigma2"),
        r2=stack("r2"),
        skipped=stack("skipped"),
        dropped=drop_counts(prev, recent, y, group, t),
    )


# --------------------------------------------------------------------------------------------------
# random problems


@dataclass
class Problem:
    """Random pairs. gid: (N,) int64 group ids (meaningless where `missing`); labels: the ids used."""

    prev: np.ndarray
    recent: np.ndarray
    y: np.ndarray
    gid: np.ndarray
    missing: np.ndarray
    n_periods: int
    labels: list[int]

    @property
    def n_pairs(self) -> int:
        return len(self.y)

    def group_float(self) -> np.ndarray:
        """Group ids as float64, NaN where missing."""
        return np.where(self.missing, np.nan, self.gid.astype(np.float64))

    def group_str(self) -> np.ndarray:
        """Group ids as strings ("g11110"), None where missing (object array)."""
        return np.array([None if m else f"g{g}" for g, m in zip(self.gid, self.missing, strict=True)], dtype=object)

    def group_int(self) -> np.ndarray:
        """Group ids as int64; only for problems without missing groups."""
        assert not self.missing.any(), "integer group ids cannot express a missing group"
        return self.gid.copy()

    def take(self, idx: np.ndarray) -> Problem:
        return Problem(
            self.prev[idx], self.recent[idx], self.y[idx], self.gid[idx], self.missing[idx], self.n_periods, self.labels
        )


def _pairs_within(rng: np.random.Generator, periods: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n pairs i < j with both periods drawn from `periods` (sorted, at least 2)."""
    a = rng.choice(periods, size=n)
    b = rng.choice(periods, size=n)
    same = a == b
    while same.any():
        b[same] = rng.choice(periods, size=int(same.sum()))
        same = a == b
    return np.minimum(a, b), np.maximum(a, b)


def random_problem(
    rng: np.random.Generator,
    *,
    n_periods: int = 12,
    labels: tuple[int, ...] = (11110, 11140, 41190),
    pairs_per_group: int = 120,
    noise: float = 0.05,
    invalid: bool = True,
    small_group: bool = True,
) -> Problem:
    """Several groups with different shapes of identification.

    group 0: all periods connected; group 1: some periods without any pair; group 2 (and further):
    two components (the base period's and one beyond a gap that no pair crosses), so periods with
    pairs that are still unidentified; optionally a last group with too few pairs (skipped at the
    default min_pairs = T). With `invalid`, about 8% of the pairs are invalid for every reason,
    some for several at once.
    """
    t = n_periods
    beta = np.cumsum(rng.normal(0.01, 0.03, size=t))
    beta -= beta[0]
    prev_l, recent_l, gid_l = [], [], []
    all_periods = np.arange(t)
    for k, label in enumerate(labels):
        if k == 0:
            i, j = _pairs_within(rng, all_periods, pairs_per_group)
        elif k == 1:
            holes = rng.choice(np.arange(1, t), size=max(1, t // 4), replace=False)
            i, j = _pairs_within(rng, np.setdiff1d(all_periods, holes), pairs_per_group)
        else:
            cut = int(rng.integers(2, t - 2))
            n_low = pairs_per_group * 2 // 3
            i1, j1 = _pairs_within(rng, np.arange(0, cut), n_low)
            i2, j2 = _pairs_within(rng, np.arange(cut, t), pairs_per_group - n_low)
            i, j = np.concatenate([i1, i2]), np.concatenate([j1, j2])
        prev_l.append(i)
        recent_l.append(j)
        gid_l.append(np.full(len(i), label))
    if small_group:
        i, j = _pairs_within(rng, all_periods, max(1, t // 2))
        i[0] = 0  # touches period 0, so that with a low min_pairs it has an index
        prev_l.append(i)
        recent_l.append(j)
        gid_l.append(np.full(len(i), 99999))
        labels = (*labels, 99999)
    prev = np.concatenate(prev_l).astype(np.int64)
    recent = np.concatenate(recent_l).astype(np.int64)
    gid = np.concatenate(gid_l).astype(np.int64)
    group_effect = {lab: rng.normal(0, 0.02, size=t) for lab in labels}
    eff = np.array([group_effect[g][j] - group_effect[g][i] for g, i, j in zip(gid, prev, recent, strict=True)])
    y = beta[recent] - beta[prev] + eff + rng.normal(0, noise, size=len(prev))
    missing = np.zeros(len(y), dtype=bool)
    if invalid:
        n = len(y)
        m = max(4, n // 12)
        idx = rng.choice(n, size=m, replace=False)
        for q, k in enumerate(idx):
            kind = q % 6
            if kind == 0:
                missing[k] = True
            elif kind == 1:
                prev[k] = -1 - int(rng.integers(0, 3))
            elif kind == 2:
                recent[k] = t + int(rng.integers(0, 3))
            elif kind == 3:  # prev after recent, or equal to it
                if rng.random() < 0.5:
                    prev[k], recent[k] = recent[k], prev[k]
                else:
                    prev[k] = recent[k]
            elif kind == 4:
                y[k] = rng.choice([np.nan, np.inf, -np.inf])
            else:  # several reasons at once: counted under the first only
                missing[k] = rng.random() < 0.5
                recent[k] = prev[k]
                y[k] = np.nan
    order = rng.permutation(len(y))
    return Problem(prev[order], recent[order], y[order], gid[order], missing[order], t, list(labels))


def connected_problem(
    rng: np.random.Generator, *, n_periods: int = 10, n_pairs: int = 200, noise: float = 0.05, n_groups: int = 1
) -> Problem:
    """Clean pairs (no invalid ones) in which every period of every group is identified: each group
    has a chain of consecutive pairs plus random ones."""
    t = n_periods
    beta = np.cumsum(rng.normal(0.01, 0.03, size=t))
    beta -= beta[0]
    prev_l, recent_l, gid_l = [], [], []
    for g in range(n_groups):
        i, j = _pairs_within(rng, np.arange(t), n_pairs)
        i = np.concatenate([np.arange(t - 1), i])
        j = np.concatenate([np.arange(1, t), j])
        prev_l.append(i)
        recent_l.append(j)
        gid_l.append(np.full(len(i), g))
    prev = np.concatenate(prev_l).astype(np.int64)
    recent = np.concatenate(recent_l).astype(np.int64)
    gid = np.concatenate(gid_l).astype(np.int64)
    y = beta[recent] - beta[prev] + rng.normal(0, noise, size=len(prev))
    order = rng.permutation(len(y))
    return Problem(
        prev[order], recent[order], y[order], gid[order], np.zeros(len(y), dtype=bool), t, list(range(n_groups))
    )


# --------------------------------------------------------------------------------------------------
# comparison


def assert_matches_reference(
    result: Any, ref: Reference, *, atol: float = 1e-9, se_rtol: float = 1e-7, stat_rtol: float = 1e-7
) -> None:
    """Compare an IndexResult-like object with the reference: labels, NaN pattern, log index (max abs
    difference <= atol), se and sigma2 (relative), R^2, and the pair counts (exactly)."""
    assert list(result.groups) == list(ref.groups)
    assert result.log_index.shape == ref.log_index.shape
    np.testing.assert_array_equal(np.isnan(result.log_index), np.isnan(ref.log_index), err_msg="NaN pattern")
    np.testing.assert_array_equal(np.isnan(result.se), np.isnan(ref.se), err_msg="se NaN pattern")
    finite = ~np.isnan(ref.log_index)
    if finite.any():
        diff = np.abs(result.log_index[finite] - ref.log_index[finite]).max()
        assert diff <= atol, f"log index differs by {diff:.3g} > {atol:.1g}"
    np.testing.assert_allclose(result.se, ref.se, rtol=se_rtol, atol=0, equal_nan=True, err_msg="se")
    np.testing.assert_allclose(result.sigma2, ref.sigma2, rtol=stat_rtol, atol=1e-300, equal_nan=True, err_msg="sigma2")
    np.testing.assert_allclose(result.r2, ref.r2, rtol=0, atol=max(stat_rtol, 1e-12), equal_nan=True, err_msg="r2")
    np.testing.assert_array_equal(result.period_pairs, ref.period_pairs, err_msg="period_pairs")
    np.testing.assert_array_equal(result.n_pairs, ref.n_pairs, err_msg="n_pairs")
    np.testing.assert_array_equal(result.n_used, ref.n_used, err_msg="n_used")
    np.testing.assert_array_equal(result.n_params, ref.n_params, err_msg="n_params")
    np.testing.assert_array_equal(result.skipped, ref.skipped, err_msg="skipped")


def assert_tables_equal(a: Any, b: Any, *, rtol: float = 1e-12) -> None:
    """Two cell tables (on the host) hold the same cells: labels, keys and counts exactly, sums to rtol
    (relative to the largest |sum| of the table, so that sums near zero do not fail on rounding)."""
    assert a.n_periods == b.n_periods
    assert list(a.group_labels) == list(b.group_labels)
    for name in ("group", "prev", "recent", "count"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name)
    for name in ("sum_y", "sum_y2"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        scale = max(float(np.abs(y).max(initial=0.0)), 1e-300)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * scale, err_msg=name)
    assert a.dropped == b.dropped


# --------------------------------------------------------------------------------------------------
# small random problems for property tests (hypothesis)


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
        missing[0] = False  # at least one group (no groups at all: unit/estimation/test_api.py)
        prev = np.where(bad & (kind == 1), -1, prev)
        recent = np.where(bad & (kind == 2), prev, recent)
        y = np.where(bad & (kind == 3), np.nan, y)
    return Problem(prev, recent, y, gid, missing, t, sorted(set(gid.tolist())))
