"""The index methods (Case-Shiller, Huber robust, Shiller's arithmetic index) against independent per-pair
references: each group's explicit dense dummy matrix on the pairs of the base period's connected component,
solved with numpy and statsmodels. Nothing in the references calls gpu_hpi."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from helpers import noisy_short_precise_long
from reference import base_component, drop_counts, valid_mask

import gpu_hpi
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

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
# Case-Shiller


@pytest.mark.parametrize("base_period", [BASE, 7])
@pytest.mark.parametrize(
    ("stage2", "quadratic"), [("squared", False), ("squared", True), ("absolute", False), ("absolute", True)]
)
def test_case_shiller_matches_reference(stage2: str, quadratic: bool, base_period: int) -> None:
    p = method_problem(1)
    method = MethodOptions(name="case_shiller", stage2=stage2, quadratic=quadratic)
    result = estimate(p, method, base_period=base_period)
    ref = reference(p, ref_case_shiller, base=base_period, stage2=stage2, quadratic=quadratic)
    assert_generator_covers(p, ref)
    assert_matches(result, ref, atol=1e-9, se_rtol=1e-9)
    np.testing.assert_allclose(result.sigma2, [e["sigma2"] for e in ref.extra], rtol=1e-9)
    np.testing.assert_array_equal(result.n_used, [e["n_used"] for e in ref.extra])
    coef = [e["coef"] for e in ref.extra]
    for solve, want in (("groups", coef[:-1]), ("pooled", coef[-1:])):
        info = result.solver_info[solve]
        assert info["method"] == "case_shiller" and info["stage2"] == stage2 and info["quadratic"] is quadratic
        got = np.asarray(info["stage2_coef"])
        assert got.shape == (len(want), 3)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
        assert quadratic or not got[:, 2].any()
    assert quadratic or (np.asarray(coef)[:, 1] > 0).all()  # the noise grows with the interval, as generated


def test_case_shiller_differs_from_ols() -> None:
    """Interval weights change the index (so the comparisons above do not pass by OLS alone)."""
    p = method_problem(1)
    cs, ols = estimate(p, "case_shiller"), estimate(p, "bmn")
    np.testing.assert_array_equal(np.isnan(cs.log_index), np.isnan(ols.log_index))
    assert np.nanmax(np.abs(cs.log_index - ols.log_index)) > 1e-4
    assert np.nanmax(np.abs(cs.se - ols.se)) > 1e-5


def test_case_shiller_zero_weights_leave_out_pairs_and_periods() -> None:
    """Where the fitted stage-2 variance is <= 0 the pairs weigh 0; a period reached only through them
    is then unidentified (NaN) in the weighted fit, though OLS identifies it."""
    p = method_problem(2, decreasing=True)
    ref = reference(p, ref_case_shiller, base=BASE, stage2="squared", quadratic=False)
    assert ref.extra[1]["zero_weight"] > 0 and ref.extra[1]["lost"] == 1  # group 20
    result = estimate(p, "case_shiller")
    assert_matches(result, ref, atol=1e-9, se_rtol=1e-9)
    np.testing.assert_array_equal(result.n_used, [e["n_used"] for e in ref.extra])
    ols = estimate(p, "bmn")
    assert np.isnan(result.log_index[1, 9]) and np.isfinite(ols.log_index[1, 9])
    assert result.solver_info["groups"]["stage2_coef"][1][1] < 0


def test_case_shiller_absolute_through_estimate_index() -> None:
    """estimate_index hands the pairs to the |e| stage 2 (a cell table alone cannot give it)."""
    p = method_problem(1)
    method = MethodOptions(name="case_shiller", stage2="absolute")
    result = estimate(p, method)
    np.testing.assert_allclose(result.log_index, fit_with_pairs(p, method).log_index, atol=1e-12, equal_nan=True)


def test_case_shiller_absolute_needs_pairs() -> None:
    p = method_problem(1)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, backend=CPU), CPU)
    with pytest.raises(gpu_hpi.ConfigError, match="absolute"):
        gpu_hpi.fit_index(table, backend=CPU, method=MethodOptions(name="case_shiller", stage2="absolute"))


def test_case_shiller_absolute_pair_pass_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The |e| pass over the pairs in many small chunks gives the one-chunk result."""
    from gpu_hpi.estimation.methods.cells import pair_pass

    p = method_problem(1)
    method = MethodOptions(name="case_shiller", stage2="absolute")
    whole = fit_with_pairs(p, method)
    monkeypatch.setattr(pair_pass, "__defaults__", (37,))
    chunked = fit_with_pairs(p, method)
    np.testing.assert_allclose(chunked.log_index, whole.log_index, atol=1e-12, rtol=0, equal_nan=True)
    np.testing.assert_allclose(chunked.se, whole.se, rtol=1e-10, equal_nan=True)


def test_case_shiller_absolute_pair_pass_in_chunks_with_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_hpi.estimation.methods.cells import pair_pass

    p = method_problem(1)
    method = MethodOptions(name="case_shiller", stage2="absolute")
    whole = fit_with_pairs(p, method, prices=True)
    monkeypatch.setattr(pair_pass, "__defaults__", (37,))
    chunked = fit_with_pairs(p, method, prices=True)
    np.testing.assert_allclose(chunked.log_index, whole.log_index, atol=1e-12, rtol=0, equal_nan=True)


# --------------------------------------------------------------------------------------------------
# robust


ROBUST = MethodOptions(name="robust", tol=1e-12, max_iter=200)


@pytest.mark.parametrize(("base_period", "huber_c"), [(BASE, 1.345), (7, 1.345), (BASE, 2.0)])
def test_robust_matches_statsmodels_rlm(base_period: int, huber_c: float) -> None:
    p = method_problem(3, outliers=0.06)
    method = MethodOptions(name="robust", tol=1e-12, max_iter=200, huber_c=huber_c)
    result = estimate(p, method, base_period=base_period)
    ref = reference(p, ref_robust, base=base_period, c=huber_c)
    assert_generator_covers(p, ref)
    assert_matches(result, ref, atol=1e-6, se_rtol=1e-6)
    scales = [e["scale"] for e in ref.extra]
    for solve, want in (("groups", scales[:-1]), ("pooled", scales[-1:])):
        info = result.solver_info[solve]
        assert info["method"] == "robust" and info["converged"] is True and info["huber_c"] == huber_c
        np.testing.assert_allclose(info["scale"], want, rtol=1e-6)
    # statsmodels counts the OLS start as iteration 1; the groups iterate together until all converge
    sm_iterations = [e["iterations"] for e in ref.extra]
    assert abs(result.solver_info["groups"]["iterations"] - (max(sm_iterations[:-1]) - 1)) <= 1
    assert abs(result.solver_info["pooled"]["iterations"] - (sm_iterations[-1] - 1)) <= 1
    np.testing.assert_allclose(result.sigma2, np.square(scales), rtol=1e-6)


def test_robust_resists_outliers() -> None:
    """With gross outliers the Huber fit is far closer to the true index than OLS (which it differs from)."""
    p = method_problem(3, outliers=0.06)
    robust, ols = estimate(p, ROBUST), estimate(p, "bmn")
    ok = np.isfinite(ols.log_index)
    np.testing.assert_array_equal(np.isfinite(robust.log_index), ok)
    err_robust = np.abs(robust.log_index - p.beta)[ok].max()
    err_ols = np.abs(ols.log_index - p.beta)[ok].max()
    assert err_robust < 0.5 * err_ols
    ref = reference(p, ref_robust, base=BASE)  # its OLS start is the bmn fit
    np.testing.assert_allclose(ols.log_index, [e["ols"] for e in ref.extra], atol=1e-9, equal_nan=True)


def test_robust_on_clean_data_stays_near_ols() -> None:
    p = method_problem(4, noise=(1e-3, 0.0), invalid=False)
    robust, ols = estimate(p, ROBUST), estimate(p, "bmn")
    np.testing.assert_array_equal(np.isnan(robust.log_index), np.isnan(ols.log_index))
    assert np.nanmax(np.abs(robust.log_index - ols.log_index)) < 1e-3  # within the noise
    assert np.nanmax(np.abs(robust.log_index - p.beta)) < 5e-3
    assert all(1e-4 < s < 1e-2 for s in robust.solver_info["groups"]["scale"])  # about the noise sd 1e-3
    assert robust.solver_info["groups"]["converged"] is True


def test_robust_iteration_limit_warns() -> None:
    p = method_problem(3, outliers=0.06)
    with pytest.warns(gpu_hpi.ConvergenceWarning, match="did not converge in 1 iteration"):
        result = estimate(p, MethodOptions(name="robust", max_iter=1))
    info = result.solver_info["groups"]
    assert info["converged"] is False and info["iterations"] == 1
    assert np.isfinite(result.log_index[0]).all()


def test_robust_needs_pairs() -> None:
    p = method_problem(3)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, backend=CPU), CPU)
    with pytest.raises(gpu_hpi.ConfigError, match="robust"):
        gpu_hpi.fit_index(table, backend=CPU, method="robust")


def with_group(p: MethodProblem, prev: np.ndarray, recent: np.ndarray, y: np.ndarray, label: int) -> MethodProblem:
    """The problem with one more group of the given pairs (prices consistent with y)."""
    n = len(y)
    return MethodProblem(
        np.concatenate([p.prev, prev]),
        np.concatenate([p.recent, recent]),
        np.concatenate([p.y, y]),
        np.concatenate([p.group, np.full(n, label)]),
        np.concatenate([p.p0, np.full(n, 1e5)]),
        np.concatenate([p.p1, 1e5 * np.exp(y)]),
        p.beta,
    )


def test_robust_se_at_the_base_without_usable_pairs() -> None:
    """A group whose pairs all lie outside the base period's component: only the base is identified,
    with log index 0 and se 0 (as every other method gives)."""
    rng = np.random.default_rng(11)
    i = rng.integers(5, T - 1, 40)
    p = with_group(method_problem(3, outliers=0.05), i, i + 1, rng.normal(0, 0.1, 40), 50)
    for method in ("bmn", "case_shiller", "arithmetic"):
        other = estimate(p, method, prices=True)
        assert other.log_index[4, BASE] == 0 and other.se[4, BASE] == 0
    result = estimate(p, ROBUST, prices=True)
    assert list(result.groups)[4] == 50
    assert np.isnan(np.delete(result.log_index[4], BASE)).all() and result.log_index[4, BASE] == 0
    np.testing.assert_array_equal(result.se[:4, BASE], 0.0)
    assert result.se[4, BASE] == 0


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_robust_without_residual_degrees_of_freedom() -> None:
    """A group of exactly one pair per consecutive periods fits exactly: its se is undefined (NaN) but 0
    at the base, as for OLS."""
    i = np.arange(T - 1)
    p = with_group(method_problem(3, outliers=0.05), i, i + 1, np.random.default_rng(12).normal(0, 0.1, T - 1), 50)
    ols = estimate(p, "bmn", min_pairs=5)
    robust = estimate(p, ROBUST, min_pairs=5)
    assert list(robust.groups)[4] == 50 and np.isfinite(robust.log_index[4]).all()
    np.testing.assert_allclose(robust.log_index[4], ols.log_index[4], atol=1e-12)  # an exact fit either way
    assert np.isnan(ols.sigma2[4]) and ols.se[4, BASE] == 0 and np.isnan(np.delete(ols.se[4], BASE)).all()
    np.testing.assert_array_equal(robust.se[4], ols.se[4])
    assert np.isnan(robust.sigma2[4])


# --------------------------------------------------------------------------------------------------
# arithmetic


@pytest.mark.parametrize("base_period", [BASE, 7])
@pytest.mark.parametrize(("interval_weights", "quadratic"), [(False, False), (True, False), (True, True)])
def test_arithmetic_matches_reference(interval_weights: bool, quadratic: bool, base_period: int) -> None:
    p = method_problem(5, bad_prices=True)
    method = MethodOptions(name="arithmetic", interval_weights=interval_weights, quadratic=quadratic)
    result = estimate(p, method, prices=True, base_period=base_period)
    ref = reference(
        p, ref_arithmetic, prices=True, base=base_period, interval_weights=interval_weights, quadratic=quadratic
    )
    assert_generator_covers(p, ref)
    assert list(result.groups) == ref.groups
    np.testing.assert_array_equal(np.isnan(result.log_index), np.isnan(ref.log_index), err_msg="NaN pattern")
    np.testing.assert_allclose(result.index, 100.0 * np.exp(ref.log_index), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(result.se, ref.se, rtol=1e-9, atol=0, equal_nan=True)
    assert (result.se[:, base_period] == 0).all() and (result.index[:, base_period] == 100).all()
    for solve in ("groups", "pooled"):
        info = result.solver_info[solve]
        assert info["method"] == "arithmetic" and info["interval_weights"] is interval_weights
    if interval_weights:
        coef = [e["coef"] for e in ref.extra]
        for solve, want in (("groups", coef[:-1]), ("pooled", coef[-1:])):
            got = np.asarray(result.solver_info[solve]["stage2_coef"])
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9 * np.abs(want).max())
            assert quadratic or not got[:, 2].any()
    else:
        assert "stage2_coef" not in result.solver_info["groups"]


def test_arithmetic_interval_weights_change_the_index() -> None:
    p = method_problem(5)
    plain = estimate(p, "arithmetic", prices=True)
    weighted = estimate(p, MethodOptions(name="arithmetic", interval_weights=True), prices=True)
    assert np.nanmax(np.abs(plain.log_index - weighted.log_index)) > 1e-4


def test_arithmetic_drops_invalid_prices() -> None:
    p = method_problem(5, bad_prices=True)
    bad = p.valid() & ~p.valid(prices=True)
    assert bad.sum() >= 10
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, n_periods=T, backend=CPU, **p.price_kwargs())
    table = gpu_hpi.build_cell_table(pairs, CPU)
    assert table.has_prices
    assert table.dropped == {**drop_counts(p.prev, p.recent, p.y, p.group, T), "invalid_price": int(bad.sum())}
    assert table.n_pairs == int(p.valid(prices=True).sum())
    # the same index as from the pairs without them
    keep = ~bad
    got = estimate(p, "arithmetic", prices=True)
    want = gpu_hpi.estimate_index(
        p.prev[keep],
        p.recent[keep],
        p.y[keep],
        p.group[keep],
        n_periods=T,
        backend=CPU,
        method="arithmetic",
        base_period=BASE,
        price_prev=p.p0[keep],
        price_recent=p.p1[keep],
    )
    np.testing.assert_allclose(got.log_index, want.log_index, rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got.se, want.se, rtol=1e-10, equal_nan=True)


def test_arithmetic_table_in_chunks() -> None:
    p = method_problem(5, bad_prices=True)
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, n_periods=T, backend=CPU, **p.price_kwargs())
    whole = gpu_hpi.build_cell_table(pairs, CPU)
    chunked = gpu_hpi.build_cell_table(pairs, CPU, chunk_size=64)
    assert chunked.dropped == whole.dropped
    for name in ("p_prev", "p_recent", "p_cross", "y"):
        np.testing.assert_allclose(chunked.sums[name], whole.sums[name], rtol=1e-12)


def test_arithmetic_recovers_exact_prices() -> None:
    """Noise-free prices P1 = P0 I_j / I_i give back the index I exactly, with se 0."""
    p = method_problem(6, invalid=False)
    index = np.exp(p.beta)
    p.p1 = p.p0 * index[p.recent] / index[p.prev]
    result = estimate(p, "arithmetic", prices=True)
    ok = np.isfinite(result.log_index)
    assert ok.sum() > 30
    np.testing.assert_allclose(result.index[ok], 100.0 * np.broadcast_to(index, ok.shape)[ok], rtol=1e-10)
    assert np.nanmax(result.se) < 1e-7  # rounding of the price moments only (noisy data: about 1e-2)


def test_arithmetic_needs_prices() -> None:
    p = method_problem(5)
    with pytest.raises(gpu_hpi.DataError, match="prices"):
        estimate(p, "arithmetic")


# --------------------------------------------------------------------------------------------------
# all methods


ALL_METHODS = {
    "bmn": "bmn",
    "case_shiller": "case_shiller",
    "case_shiller_absolute": MethodOptions(name="case_shiller", stage2="absolute", quadratic=True),
    "robust": ROBUST,
    "arithmetic": "arithmetic",
    "arithmetic_weighted": MethodOptions(name="arithmetic", interval_weights=True),
}


@pytest.mark.parametrize("name", list(ALL_METHODS))
def test_without_group_column_gives_the_pooled_index(name: str) -> None:
    p = method_problem(7, outliers=0.03, bad_prices=True)
    grouped = fit_with_pairs(p, ALL_METHODS[name], prices=True)
    kwargs = p.price_kwargs()
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, None, n_periods=T, backend=CPU, **kwargs)
    table = gpu_hpi.build_cell_table(pairs, CPU)
    single = gpu_hpi.fit_index(table, pairs=pairs, backend=CPU, base_period=BASE, method=ALL_METHODS[name])
    assert list(single.groups) == ["ALL"] and list(single.solver_info) == ["groups"]
    np.testing.assert_allclose(single.log_index[0], grouped.log_index[-1], atol=1e-12, rtol=0, equal_nan=True)
    np.testing.assert_allclose(single.se[0], grouped.se[-1], rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("name", list(ALL_METHODS))
def test_groups_and_pooled_solved_separately(name: str) -> None:
    """groups=False / pooled=False give the same rows as the full run."""
    p = method_problem(7, outliers=0.03)
    full = fit_with_pairs(p, ALL_METHODS[name], prices=True)
    kwargs = p.price_kwargs()
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, n_periods=T, backend=CPU, **kwargs)
    table = gpu_hpi.build_cell_table(pairs, CPU)
    for groups, rows in ((True, slice(None, -1)), (False, slice(-1, None))):
        part = gpu_hpi.fit_index(
            table,
            pairs=pairs,
            backend=CPU,
            base_period=BASE,
            method=ALL_METHODS[name],
            groups=groups,
            pooled=not groups,
        )
        assert list(part.groups) == list(full.groups[rows])
        np.testing.assert_allclose(part.log_index, full.log_index[rows], atol=1e-12, rtol=0, equal_nan=True)


@pytest.mark.parametrize("name", ["case_shiller_absolute", "robust"])
def test_pair_methods_with_sparse_cell_lookup(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-pair passes find the pairs' cells by binary search in large key spaces: same fit."""
    from gpu_hpi.data import cells

    p = method_problem(7, outliers=0.03)
    dense = estimate(p, ALL_METHODS[name])
    monkeypatch.setattr(cells, "DENSE_KEY_LIMIT", 0)
    sparse = estimate(p, ALL_METHODS[name])
    np.testing.assert_allclose(sparse.log_index, dense.log_index, atol=1e-12, rtol=0, equal_nan=True)
    np.testing.assert_allclose(sparse.se, dense.se, rtol=1e-10, equal_nan=True)


def test_bmn_method_is_the_default() -> None:
    p = method_problem(1)
    default = gpu_hpi.estimate_index(p.prev, p.recent, p.y, p.group, n_periods=T, backend=CPU, base_period=BASE)
    for method in ("bmn", MethodOptions()):
        result = estimate(p, method)
        np.testing.assert_array_equal(result.log_index, default.log_index)
        np.testing.assert_array_equal(result.se, default.se)
        assert result.solver_info["groups"]["method"] == "bmn"


@pytest.mark.parametrize("method", ["case_shiller", "robust", "arithmetic"])
def test_iterative_solver_refused_for_methods(method: str) -> None:
    p = method_problem(1)
    with pytest.raises(gpu_hpi.ConfigError, match="solver=lsqr"):
        estimate(p, method, prices=True, solver="lsqr")


def test_unknown_method() -> None:
    p = method_problem(1)
    with pytest.raises(gpu_hpi.ConfigError, match="method must be one of"):
        estimate(p, "hedonic")
    with pytest.raises(gpu_hpi.ConfigError, match="method must be one of"):
        MethodOptions(name="Case-Shiller")
    with pytest.raises(gpu_hpi.ConfigError, match="stage2"):
        MethodOptions(name="case_shiller", stage2="cubic")


def test_case_shiller_zero_weight_pairs_are_counted_and_warned() -> None:
    """Noisy short holdings, precise long ones: the linear stage-2 variance turns negative past some
    holding length, and the pairs there get weight 0. Counted against a plain numpy reference
    (dummy-matrix OLS, then the residuals squared regressed on [1, h])."""
    t = 40
    prev, recent, y = noisy_short_precise_long(t=t)
    h = recent - prev
    z = np.zeros((len(y), t))
    z[np.arange(len(y)), recent] += 1
    z[np.arange(len(y)), prev] -= 1
    beta = np.linalg.lstsq(z[:, 1:], y, rcond=None)[0]
    e2 = (y - z[:, 1:] @ beta) ** 2
    coef = np.linalg.lstsq(np.column_stack([np.ones_like(h), h]).astype(float), e2, rcond=None)[0]
    want = int((coef[0] + coef[1] * h <= 0).sum())
    assert want > 0
    with pytest.warns(gpu_hpi.IdentificationWarning, match=r"weight 0 .*zero_weight"):
        result = gpu_hpi.estimate_index(prev, recent, y, n_periods=t, method="case_shiller", backend="cpu", min_pairs=1)
    info = result.solver_info["groups"]
    assert info["zero_weight_pairs"] == want
    assert info["zero_weight_from_holding"] == int(h[coef[0] + coef[1] * h <= 0].min())
    assert int(result.n_used.sum()) == len(y) - want
