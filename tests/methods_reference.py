"""The index methods' test problems and their independent per-pair references (Case-Shiller, Huber
robust, Shiller's arithmetic index): each group's explicit dense dummy matrix on the pairs of the base
period's connected component, solved with numpy and statsmodels. Nothing in the references calls
gpu_hpi; `estimate` and `fit_with_pairs` run the library on the same problems. Shared by the tests of
estimation/methods/."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import statsmodels.api as sm
from reference import base_component, valid_mask

import gpu_hpi
from gpu_hpi.estimation.methods import MethodOptions

CPU = gpu_hpi.resolve_backend("cpu")
T = 10
BASE = 3
LABELS = (10, 20, 30, 40)


# --------------------------------------------------------------------------------------------------
# problems


@dataclass
class MethodProblem:
    """Pairs of several groups (int ids), their true log index, and sale prices consistent with y."""

    prev: np.ndarray
    recent: np.ndarray
    y: np.ndarray
    group: np.ndarray
    p0: np.ndarray
    p1: np.ndarray
    beta: np.ndarray
    n_periods: int = T

    def valid(self, prices: bool = False) -> np.ndarray:
        ok = valid_mask(self.prev, self.recent, self.y, self.group, self.n_periods)
        if prices:
            with np.errstate(invalid="ignore", over="ignore"):
                ok &= (self.p0 > 0) & (self.p1 > 0) & np.isfinite(self.p0 * self.p1)
        return ok

    def price_kwargs(self) -> dict[str, Any]:
        return {"price_prev": self.p0, "price_recent": self.p1}


def _pairs_among(rng: np.random.Generator, periods: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A chain of consecutive periods (so that all of them connect) plus n random pairs i < j."""
    a = rng.choice(periods, size=n)
    b = rng.choice(periods, size=n)
    while (same := a == b).any():
        b[same] = rng.choice(periods, size=int(same.sum()))
    return np.concatenate([periods[:-1], np.minimum(a, b)]), np.concatenate([periods[1:], np.maximum(a, b)])


def method_problem(
    seed: int,
    *,
    sizes: tuple[int, ...] = (300, 160, 90, 60),
    noise: tuple[float, float] = (0.02, 0.03),
    outliers: float = 0.0,
    invalid: bool = True,
    bad_prices: bool = False,
    decreasing: bool = False,
) -> MethodProblem:
    """Groups of different sizes and shapes, base period BASE:
    group 10: every period connected; 20: period 6 without pairs; 30: two components {0..4} and {5..9}
    (5..9 unidentified); 40: periods 1 and 8 without pairs. Noise variance noise[0]^2 + noise[1]^2 h
    (h = holding interval), or with `decreasing` falling in h in group 20 (Case-Shiller weights 0 at long h),
    where period 9 then connects only through intervals of 7 or more.
    outliers: share of pairs shifted by +-(0.5..1.5); invalid: NaN y and prev >= recent pairs;
    bad_prices: zero, negative and NaN prices on otherwise valid pairs."""
    rng = np.random.default_rng(seed)
    beta = np.cumsum(rng.normal(0.01, 0.04, size=T))
    beta -= beta[BASE]
    every = np.arange(T)
    shapes = [[every], [np.setdiff1d(every, [6])], [np.arange(0, 5), np.arange(5, T)], [np.setdiff1d(every, [1, 8])]]
    prev_l, recent_l, gid_l, sd_l = [], [], [], []
    for k, size in enumerate(sizes):
        parts = shapes[k % len(shapes)]
        for q, periods in enumerate(parts):
            n = size // len(parts) if q else size - size // len(parts) * (len(parts) - 1)
            i, j = _pairs_among(rng, periods, n)
            if decreasing and k == 1:  # period 9 only through long intervals, which get weight 0
                i, j = _pairs_among(rng, np.setdiff1d(periods, [9]), n - 3)
                i, j = np.concatenate([i, [0, 1, 2]]), np.concatenate([j, [9, 9, 9]])
            h = (j - i).astype(np.float64)
            if decreasing and k == 1:
                sd = 0.06 * np.sqrt(np.clip(1.0 - h / 5.0, 0.01, None))
            else:
                sd = np.sqrt(noise[0] ** 2 + noise[1] ** 2 * h)
            prev_l.append(i)
            recent_l.append(j)
            gid_l.append(np.full(len(i), LABELS[k]))
            sd_l.append(sd)
    prev = np.concatenate(prev_l).astype(np.int64)
    recent = np.concatenate(recent_l).astype(np.int64)
    group = np.concatenate(gid_l).astype(np.int64)
    y = beta[recent] - beta[prev] + rng.normal(size=len(prev)) * np.concatenate(sd_l)
    n = len(y)
    if outliers:
        idx = rng.choice(n, size=int(outliers * n), replace=False)
        y[idx] += rng.choice([-1.0, 1.0], size=len(idx)) * rng.uniform(0.5, 1.5, size=len(idx))
    p0 = np.exp(rng.normal(12.5, 0.5, size=n))
    p1 = p0 * np.exp(y)
    if invalid:
        idx = rng.choice(n, size=n // 15, replace=False)
        for q, k in enumerate(idx):
            if q % 2:
                y[k] = np.nan
            elif q % 4 == 1:
                prev[k], recent[k] = recent[k], prev[k]  # prev > recent
            else:
                prev[k] = recent[k]  # prev == recent
    if bad_prices:
        ok = valid_mask(prev, recent, y, group, T)
        idx = rng.choice(np.flatnonzero(ok), size=n // 20, replace=False)
        for q, k in enumerate(idx):
            if q % 3 == 0:
                p0[k] = 0.0
            elif q % 3 == 1:
                p1[k] = -p1[k]
            else:
                p0[k] = np.nan
    order = rng.permutation(n)
    return MethodProblem(prev[order], recent[order], y[order], group[order], p0[order], p1[order], beta)


# --------------------------------------------------------------------------------------------------
# per-pair references (one group's valid pairs)


@dataclass
class RefFit:
    """One group's reference: (T,) log index and se, NaN where not identified; method details."""

    log_index: np.ndarray
    se: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def free_columns(identified: np.ndarray, base: int) -> list[int]:
    return [p for p in range(len(identified)) if identified[p] and p != base]


def dummies(prev: np.ndarray, recent: np.ndarray, t: int, columns: list[int]) -> np.ndarray:
    """The -1/+1 dummy matrix of the pairs, restricted to `columns`."""
    z = np.zeros((len(prev), t))
    rows = np.arange(len(prev))
    z[rows, prev] = -1.0
    z[rows, recent] = 1.0
    return z[:, columns]


def place(t: int, base: int, columns: list[int], values: np.ndarray, at_base: float = 0.0) -> np.ndarray:
    out = np.full(t, np.nan)
    out[base] = at_base
    out[columns] = values
    return out


def interval_design(h: np.ndarray, quadratic: bool) -> np.ndarray:
    return np.column_stack([np.ones_like(h), h, h * h][: 3 if quadratic else 2])


def padded(coef: np.ndarray) -> np.ndarray:
    out = np.zeros(3)
    out[: len(coef)] = coef
    return out


def ref_case_shiller(
    prev: np.ndarray, recent: np.ndarray, y: np.ndarray, t: int, base: int, *, stage2: str, quadratic: bool
) -> RefFit:
    ident = base_component(prev, recent, t, base)
    inside = ident[prev]
    i, j, yy = prev[inside], recent[inside], y[inside]
    x = dummies(i, j, t, free_columns(ident, base))
    e = yy - x @ np.linalg.lstsq(x, yy, rcond=None)[0]  # stage 1: OLS
    hmat = interval_design((j - i).astype(np.float64), quadratic)
    target = e * e if stage2 == "squared" else np.abs(e)
    coef = np.linalg.lstsq(hmat, target, rcond=None)[0]  # stage 2: OLS of e^2 (|e|) on the interval
    fitted = hmat @ coef
    with np.errstate(divide="ignore"):
        w = np.where(fitted > 0, 1.0 / (fitted if stage2 == "squared" else fitted**2), 0.0)
    positive = w > 0
    ident3 = base_component(i[positive], j[positive], t, base)
    keep = positive & ident3[i]
    columns = free_columns(ident3, base)
    wls = sm.WLS(yy[keep], dummies(i[keep], j[keep], t, columns), weights=w[keep]).fit()  # stage 3
    extra = {
        "coef": padded(coef),
        "sigma2": wls.scale,
        "n_used": int(keep.sum()),
        "zero_weight": int((~positive).sum()),
    }
    extra["lost"] = int(ident.sum() - ident3.sum())
    return RefFit(place(t, base, columns, wls.params), place(t, base, columns, wls.bse), extra)


def ref_robust(prev: np.ndarray, recent: np.ndarray, y: np.ndarray, t: int, base: int, *, c: float = 1.345) -> RefFit:
    ident = base_component(prev, recent, t, base)
    inside = ident[prev]
    columns = free_columns(ident, base)
    x = dummies(prev[inside], recent[inside], t, columns)
    res = sm.RLM(y[inside], x, M=sm.robust.norms.HuberT(c)).fit(conv="coefs", tol=1e-12, maxiter=200)
    ols = sm.OLS(y[inside], x).fit()
    extra = {"scale": res.scale, "iterations": res.fit_history["iteration"], "ols": place(t, base, columns, ols.params)}
    return RefFit(place(t, base, columns, res.params), place(t, base, columns, res.bse), extra)


def ref_arithmetic(
    prev: np.ndarray,
    recent: np.ndarray,
    p0: np.ndarray,
    p1: np.ndarray,
    t: int,
    base: int,
    *,
    interval_weights: bool = False,
    quadratic: bool = False,
) -> RefFit:
    ident = base_component(prev, recent, t, base)
    inside = ident[prev]
    i, j, a0, a1 = prev[inside], recent[inside], p0[inside], p1[inside]

    def solve(keep: np.ndarray, ident: np.ndarray, w: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
        ik, jk, wk = i[keep], j[keep], w[keep]
        rows = np.arange(len(ik))
        x = np.zeros((len(ik), t))
        x[rows, ik] = -a0[keep]
        x[rows, jk] = a1[keep]
        yv = -x[:, base]
        columns = free_columns(ident, base)
        xa, z = x[:, columns], dummies(ik, jk, t, columns)
        zwx = z.T @ (wk[:, None] * xa)
        b = np.linalg.solve(zwx, z.T @ (wk * yv))
        u = yv - xa @ b
        a = np.linalg.inv(zwx)
        wz = z * (wk * u)[:, None]
        cov = a @ (wz.T @ wz) @ a.T  # sandwich: A (sum w^2 u^2 z z') A'
        return columns, b, np.sqrt(np.diag(cov)) / b

    everyone = np.ones(len(i), dtype=bool)
    columns, b, se = solve(everyone, ident, np.ones(len(i)))
    extra: dict[str, Any] = {}
    if interval_weights:
        rows = np.arange(len(i))
        x = np.zeros((len(i), t))
        x[rows, i] = -a0
        x[rows, j] = a1
        b_full = np.ones(t)
        b_full[columns] = b
        u = -(x @ b_full)  # Y - Xa b
        hmat = interval_design((j - i).astype(np.float64), quadratic)
        coef = np.linalg.lstsq(hmat, u * u, rcond=None)[0]
        fitted = hmat @ coef
        with np.errstate(divide="ignore"):
            w = np.where(fitted > 0, 1.0 / fitted, 0.0)
        positive = w > 0
        ident3 = base_component(i[positive], j[positive], t, base)
        columns, b, se = solve(positive & ident3[i], ident3, w)
        extra = {"coef": padded(coef), "zero_weight": int((~positive).sum())}
    return RefFit(place(t, base, columns, -np.log(b)), place(t, base, columns, se), extra)


@dataclass
class Reference:
    groups: list[Any]
    log_index: np.ndarray
    se: np.ndarray
    extra: list[dict[str, Any]]


def reference(p: MethodProblem, fit: Callable[..., RefFit], *, prices: bool = False, **kwargs: Any) -> Reference:
    """`fit` on each group's valid pairs (labels sorted), then on all valid pairs ("ALL")."""
    ok = p.valid(prices)
    selections = [(g, ok & (p.group == g)) for g in sorted(set(p.group.tolist()))] + [("ALL", ok)]
    fits = []
    for _, sel in selections:
        data = (p.p0[sel], p.p1[sel]) if prices else (p.y[sel],)
        fits.append(fit(p.prev[sel], p.recent[sel], *data, p.n_periods, **kwargs))
    return Reference(
        [g for g, _ in selections],
        np.array([f.log_index for f in fits]),
        np.array([f.se for f in fits]),
        [f.extra for f in fits],
    )


def assert_matches(result: gpu_hpi.IndexResult, ref: Reference, *, atol: float, se_rtol: float) -> None:
    assert list(result.groups) == ref.groups
    np.testing.assert_array_equal(np.isnan(result.log_index), np.isnan(ref.log_index), err_msg="NaN pattern")
    np.testing.assert_array_equal(np.isnan(result.se), np.isnan(ref.se), err_msg="se NaN pattern")
    np.testing.assert_allclose(result.log_index, ref.log_index, rtol=0, atol=atol, equal_nan=True, err_msg="log")
    np.testing.assert_allclose(result.se, ref.se, rtol=se_rtol, atol=0, equal_nan=True, err_msg="se")


# --------------------------------------------------------------------------------------------------
# the library on the same problems


def estimate(p: MethodProblem, method: Any, *, base_period: int = BASE, prices: bool = False, **options: Any) -> Any:
    kwargs = p.price_kwargs() if prices else {}
    return gpu_hpi.estimate_index(
        p.prev,
        p.recent,
        p.y,
        p.group,
        n_periods=p.n_periods,
        backend=CPU,
        method=method,
        base_period=base_period,
        **kwargs,
        **options,
    )


def fit_with_pairs(p: MethodProblem, method: Any, *, base_period: int = BASE, prices: bool = False) -> Any:
    """fit_index given the pairs (what every method may need) on the table of the same pairs."""
    kwargs = p.price_kwargs() if prices else {}
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, n_periods=p.n_periods, backend=CPU, **kwargs)
    table = gpu_hpi.build_cell_table(pairs, CPU)
    return gpu_hpi.fit_index(table, pairs=pairs, backend=CPU, base_period=base_period, method=method)


def assert_generator_covers(p: MethodProblem, ref: Reference) -> None:
    """The problem has invalid pairs and unidentified periods, or the comparison proves little."""
    assert (~p.valid()).any()
    assert np.isnan(ref.log_index).any() and not np.isnan(ref.log_index).all(axis=1).any()


# --------------------------------------------------------------------------------------------------
# the methods' options of several tests


ROBUST = MethodOptions(name="robust", tol=1e-12, max_iter=200)
ALL_METHODS = {
    "bmn": "bmn",
    "case_shiller": "case_shiller",
    "case_shiller_absolute": MethodOptions(name="case_shiller", stage2="absolute", quadratic=True),
    "robust": ROBUST,
    "arithmetic": "arithmetic",
    "arithmetic_weighted": MethodOptions(name="arithmetic", interval_weights=True),
}
