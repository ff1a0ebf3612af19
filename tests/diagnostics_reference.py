"""The analyses' test data and references written by plain loops and explicit refits: pairs of three
groups over T periods (group 20 with a period that only three pairs touch, all of them in fold 0 of
FOLDS; group 30 with a period no pair touches), the folds' hash, the rolling volatility and the
revision statistics; and random pairs of three groups over PAIRS_T periods. Shared by the tests of
analysis/ and app/report.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import gpu_hpi
from gpu_hpi.analysis.refit import Refit

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


@dataclass
class RefRevision:
    mean: np.ndarray
    median: np.ndarray
    count: np.ndarray
    overall_mean: np.ndarray
    overall_median: np.ndarray
    vintages: list[int]


def ref_revision_stats(levels: list[np.ndarray], vintages: list[int]) -> RefRevision:
    """The revision statistics by plain loops from each vintage's (G, T) index level: the change of
    each value from the last vintage that had it (a vintage without it, a region skipped then,
    leaves the last one standing)."""
    n_groups, n_periods = levels[0].shape if levels else (0, 0)
    per_cell: dict[tuple[int, int], list[float]] = {}
    per_group: dict[int, list[float]] = {k: [] for k in range(n_groups)}
    last = levels[0].copy() if levels else np.empty((0, 0))
    for b in levels[1:]:
        for k in range(n_groups):
            for t in range(n_periods):
                d = b[k, t] - last[k, t]
                if np.isfinite(d):
                    per_cell.setdefault((k, t), []).append(float(d))
                    per_group[k].append(float(d))
                if np.isfinite(b[k, t]):
                    last[k, t] = b[k, t]
    shape = (n_groups, n_periods)
    mean, median, count = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, np.int64)
    for (k, t), values in per_cell.items():
        mean[k, t], median[k, t], count[k, t] = np.mean(values), np.median(values), len(values)
    overall_mean = np.array([np.mean(v) if v else np.nan for v in per_group.values()])
    overall_median = np.array([np.median(v) if v else np.nan for v in per_group.values()])
    return RefRevision(mean, median, count, overall_mean, overall_median, vintages)


# --------------------------------------------------------------------------------------------------
# random pairs over PAIRS_T periods (in-sample and forecast errors, vintages)


PAIRS_T = 16


def random_pairs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(group, prev, recent, y): 3000 pairs of three groups over PAIRS_T periods."""
    rng = np.random.default_rng(seed)
    n = 3000
    group = rng.integers(0, 3, n)
    prev = rng.integers(0, PAIRS_T - 1, n)
    recent = np.minimum(prev + 1 + rng.geometric(0.3, n), PAIRS_T - 1)
    beta = np.cumsum(rng.normal(0.01, 0.02, (3, PAIRS_T)), axis=1)
    y = beta[group, recent] - beta[group, prev] + rng.normal(0, 0.05, n)
    return group, prev, recent, y


def fit_pairs(group: np.ndarray, prev: np.ndarray, recent: np.ndarray, y: np.ndarray) -> gpu_hpi.IndexResult:
    """fit_index on the cell table of the pairs, min_pairs 1."""
    pairs = gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=PAIRS_T, backend=CPU)
    return gpu_hpi.fit_index(gpu_hpi.build_cell_table(pairs, CPU), backend=CPU, min_pairs=1)
