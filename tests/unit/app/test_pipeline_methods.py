"""The job's index methods, price columns and diagnostics.

Expected numbers come from the library on the same pairs: the synthetic market's own pairs
(SyntheticMarket.arrays(), prices as the pipeline makes them), or the pairs written to parquet here;
the analyses themselves are tested against their references in tests/unit/analysis/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import (
    START_MONTH,
    Run,
    assert_frames_equal,
    compose_config,
    expected_frame,
    make_pairs,
    month_labels,
    q,
    run_app,
    seed_frame,
)

import gpu_hpi
from gpu_hpi.analysis.accuracy import Accuracy, accuracy
from gpu_hpi.analysis.refit import Refit
from gpu_hpi.analysis.revision import revision
from gpu_hpi.analysis.series import diagnostics_frame, smooth, volatility
from gpu_hpi.app import pipeline
from gpu_hpi.errors import ConfigError
from gpu_hpi.estimation.methods import MethodOptions
from gpu_hpi.synthetic import SyntheticMarket

CPU = gpu_hpi.resolve_backend("cpu")
N, T, G, SEED = 30_000, 48, 3, 424242
SYNTH = (f"data.n_pairs={N}", f"data.n_periods={T}", f"data.n_groups={G}", f"data.seed={SEED}")
DIAG_COLUMNS = ["group", "period", "change_pct", "volatility", "revision_mean", "revision_median", "n_revisions"]
ACC_COLUMNS = ["kind", "group", "mean_error", "mean_abs_error", "median_abs_error", "rmse", "n_scored", "n_unscored"]


class Market:
    """The synthetic market of SYNTH as the library sees it."""

    def __init__(self) -> None:
        market = SyntheticMarket.create(N, T, G, SEED, 0.1, 30.0)
        assert market.n_pairs < 1 << 22  # a single chunk: prices(y, 0), as app.load_pairs._synthetic_batches
        self.group, self.prev, self.recent, self.y = market.arrays()
        self.p0, self.p1 = market.prices(self.y, 0)
        self.labels = month_labels(np.arange(START_MONTH, START_MONTH + T))

    def expected(self, method: Any = "bmn", prices: bool = False) -> pd.DataFrame:
        extra = {"price_prev": self.p0, "price_recent": self.p1} if prices else {}
        return expected_frame(
            self.prev.astype(np.int64) + START_MONTH,
            self.recent.astype(np.int64) + START_MONTH,
            self.y,
            self.group,
            first=START_MONTH,
            last=START_MONTH + T - 1,
            method=method,
            **extra,
        )

    def fitted(self, method: str = "bmn") -> tuple[gpu_hpi.Pairs, gpu_hpi.CellTable, gpu_hpi.IndexResult, Any]:
        """(pairs, table, result, refit) as app.report.run_diagnostics has them."""
        pairs = gpu_hpi.prepare_pairs(self.prev, self.recent, self.y, self.group, n_periods=T, backend=CPU)
        table = gpu_hpi.build_cell_table(pairs, CPU)
        options = {"backend": CPU, "method": method, "min_pairs": None, "groups": True, "pooled": True}
        result = gpu_hpi.fit_index(table, period_labels=self.labels, **options)
        return pairs, table, result, Refit(gpu_hpi.MethodOptions(name=method), None, True, True)


@pytest.fixture(scope="module")
def market() -> Market:
    return Market()


def diagnostics_csv(run: Run) -> pd.DataFrame:
    return pd.read_csv(run.dir / "diagnostics.csv", dtype={"group": str, "period": str})


def assert_close_columns(got: pd.DataFrame, want: pd.DataFrame, columns: list[str], tol: float = 1e-9) -> None:
    for col in columns:
        a, b = got[col].to_numpy(float), want[col].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=col)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=col)


def assert_accuracy_csv(run: Run, want: Accuracy) -> None:
    got = pd.read_csv(run.dir / "accuracy.csv", dtype={"group": str})
    frame = want.to_frame()
    assert list(got.columns) == ACC_COLUMNS
    assert got["group"].tolist() == frame["group"].tolist()
    np.testing.assert_array_equal(got["n_scored"], frame["n_scored"])
    np.testing.assert_array_equal(got["n_unscored"], frame["n_unscored"])
    assert_close_columns(got, frame, ["mean_abs_error", "median_abs_error", "rmse"])
    section = run.summary["diagnostics"]["accuracy"]
    assert section["folds"] == want.folds
    for name, value in want.overall.items():
        assert section[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


# --------------------------------------------------------------------------------------------------
# the methods on the synthetic market


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize("method", ["case_shiller", "robust", "arithmetic"])
def test_synthetic_market_methods(tmp_path: Path, market: Market, method: str) -> None:
    run = run_app(tmp_path, *SYNTH, f"method={method}", "diagnostics.accuracy_folds=3").ok()
    s = run.summary
    assert s["method"] == method and s["solver"] == "normal"
    for part in ("groups", "pooled"):
        info = s["solver_info"][part]
        assert info["method"] == method
        if method == "case_shiller":
            assert info["stage2"] == "squared" and info["quadratic"] is False
            coef = np.asarray(info["stage2_coef"])
            assert coef.shape == ((G, 3) if part == "groups" else (1, 3))
            assert (coef[:, 0] > 0).all() and (coef[:, 2] == 0).all()  # no h^2 term unless quadratic
        elif method == "robust":
            assert info["converged"] is True and 0 < info["iterations"] <= 50 and info["huber_c"] == 1.345
            assert len(info["scale"]) == (G if part == "groups" else 1)
        else:
            assert info["interval_weights"] is False and "stage2_coef" not in info
    assert_frames_equal(run.frame, market.expected(method, prices=method == "arithmetic"))
    assert s["max_abs_error_vs_true_log_index"] < 0.1
    assert f"method {method}" in run.stdout

    diag = s["diagnostics"]
    if method == "robust":
        for part in ("revision", "accuracy"):
            assert isinstance(diag[part], str) and "not available for method=robust" in diag[part]
        assert not (run.dir / "accuracy.csv").exists()
        assert list(diagnostics_csv(run).columns) == DIAG_COLUMNS[:4]
    else:
        # revision and accuracy refit with the method itself
        if method == "arithmetic":
            pairs = gpu_hpi.prepare_pairs(
                market.prev,
                market.recent,
                market.y,
                market.group,
                n_periods=T,
                backend=CPU,
                price_prev=market.p0,
                price_recent=market.p1,
            )
            table = gpu_hpi.build_cell_table(pairs, CPU)
            result = gpu_hpi.fit_index(table, period_labels=market.labels, backend=CPU, method=method)
            refit = Refit(gpu_hpi.MethodOptions(name=method))
        else:
            pairs, table, result, refit = market.fitted(method)
        assert_accuracy_csv(run, accuracy(pairs, table, refit, result, CPU, 3))
        rev = revision(table, refit, result)
        want = diagnostics_frame(result, volatility(result, 3), rev)
        got = diagnostics_csv(run)
        assert list(got.columns) == DIAG_COLUMNS
        assert_close_columns(got, want, DIAG_COLUMNS[2:])
        assert diag["revision"]["vintages"] == T - 1


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize(
    "overrides, options",
    [
        (("method=case_shiller", "method.stage2=absolute"), MethodOptions(name="case_shiller", stage2="absolute")),
        (("method=case_shiller", "method.quadratic=true"), MethodOptions(name="case_shiller", quadratic=True)),
        (
            ("method=arithmetic", "method.interval_weights=true"),
            MethodOptions(name="arithmetic", interval_weights=True),
        ),
    ],
    ids=["stage2-absolute", "quadratic", "interval-weights"],
)
def test_method_options(tmp_path: Path, market: Market, overrides: tuple[str, ...], options: MethodOptions) -> None:
    prices = options.name == "arithmetic"
    run = run_app(tmp_path, *SYNTH, *overrides, "diagnostics.accuracy_folds=3").ok()
    got = run.frame
    assert_frames_equal(got, market.expected(options, prices=prices))
    default = market.expected(options.name, prices=prices)
    assert np.nanmax(np.abs(got["log_index"].to_numpy() - default["log_index"].to_numpy())) > 1e-6
    info = run.summary["solver_info"]["groups"]
    if options.name == "arithmetic":
        assert info["interval_weights"] is True and np.asarray(info["stage2_coef"]).shape == (G, 3)
    else:
        assert info["stage2"] == options.stage2 and info["quadratic"] is options.quadratic
        assert (np.asarray(info["stage2_coef"])[:, 2] != 0).all() == options.quadratic
    diag = run.summary["diagnostics"]
    if options.needs_pairs:  # the |e| stage 2 needs the pairs: no refits from the table
        assert "not available" in diag["revision"] and "not available" in diag["accuracy"]
        assert not (run.dir / "accuracy.csv").exists()
    else:
        assert diag["revision"]["vintages"] == T - 1 and diag["accuracy"]["folds"] == 3


# --------------------------------------------------------------------------------------------------
# sale prices from a parquet file


@pytest.fixture
def price_file(tmp_path: Path) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """Pairs with sale prices P0, P1 (LogPriceDiff deliberately not log(P1 / P0)) and nine bad prices."""
    pairs = make_pairs(n=6000, seed=21)
    df = seed_frame(pairs, group="int")
    rng = np.random.default_rng(21)
    p0 = np.exp(rng.normal(12.0, 0.5, len(df)))
    df["P0"], df["P1"] = p0, p0 * np.exp(pairs["y"].to_numpy() + rng.normal(0, 0.01, len(df)))
    bad = rng.choice(np.arange(200, len(df)), 9, replace=False)
    df.loc[bad[:3], "P0"] = 0.0
    df.loc[bad[3:6], "P1"] = -df.loc[bad[3:6], "P1"]
    df.loc[bad[6:], "P0"] = np.nan
    path = tmp_path / "prices.parquet"
    df.to_parquet(path, index=False)
    return path, df, bad


def _months(col: pd.Series) -> np.ndarray:
    return (col.dt.year * 12 + col.dt.month - 1).to_numpy()


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_arithmetic_from_price_columns(tmp_path: Path, price_file: tuple[Path, pd.DataFrame, np.ndarray]) -> None:
    path, df, bad = price_file
    base = ("data=pairs", f"data.path={q(path)}", "data.columns.price_prev=P0", "data.columns.price_recent=P1")
    run = run_app(tmp_path, *base, "method=arithmetic", "diagnostics.revision=false").ok()
    want = expected_frame(
        _months(df["PrevYearMonth"]),
        _months(df["RecentYearMonth"]),
        df["LogPriceDiff"],
        df["group_id"].to_numpy(),
        method="arithmetic",
        price_prev=df["P0"].to_numpy(),
        price_recent=df["P1"].to_numpy(),
    )
    assert_frames_equal(run.frame, want)
    s = run.summary
    assert s["method"] == "arithmetic"
    assert s["dropped"] == {"invalid_price": len(bad)}
    assert s["n_pairs_read"] == len(df) and s["n_pairs_used"] == len(df) - len(bad)
    assert "invalid_price 9" in run.stdout
    # the arithmetic index is not the log-linear one
    bmn = expected_frame(
        _months(df["PrevYearMonth"]), _months(df["RecentYearMonth"]), df["LogPriceDiff"], df["group_id"].to_numpy()
    )
    assert np.nanmax(np.abs(run.frame["log_index"].to_numpy() - bmn["log_index"].to_numpy())) > 1e-4


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_y_computed_from_prices(tmp_path: Path, price_file: tuple[Path, pd.DataFrame, np.ndarray]) -> None:
    path, df, bad = price_file
    run = run_app(
        tmp_path,
        "data=pairs",
        f"data.path={q(path)}",
        "data.columns.price_prev=P0",
        "data.columns.price_recent=P1",
        "data.columns.y=null",
        "diagnostics.revision=false",
    ).ok()
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(df["P1"].to_numpy() / df["P0"].to_numpy())
    assert np.isfinite(y).sum() == len(df) - len(bad)
    args = (_months(df["PrevYearMonth"]), _months(df["RecentYearMonth"]))
    assert_frames_equal(run.frame, expected_frame(*args, y, df["group_id"].to_numpy()))
    from_column = expected_frame(*args, df["LogPriceDiff"], df["group_id"].to_numpy())
    assert np.nanmax(np.abs(run.frame["log_index"].to_numpy() - from_column["log_index"].to_numpy())) > 1e-4
    s = run.summary
    assert sum(s["dropped"].values()) == len(bad) and set(s["dropped"]) <= {"nonfinite_y", "invalid_price"}


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_price_column_errors(tmp_path: Path, price_file: tuple[Path, pd.DataFrame, np.ndarray]) -> None:
    path, _, _ = price_file
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}", "method=arithmetic", name="noprices").assert_failed(
        "method=arithmetic", "data.columns.price_prev", "data.columns.price_recent"
    )
    run_app(
        tmp_path, "data=pairs", f"data.path={q(path)}", "data.columns.price_prev=P0", name="oneprice"
    ).assert_failed("price_prev", "price_recent")


# --------------------------------------------------------------------------------------------------
# diagnostics


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_diagnostics_outputs(tmp_path: Path, market: Market) -> None:
    run = run_app(tmp_path, *SYNTH, "diagnostics.accuracy_folds=5", "diagnostics.smooth_window=3").ok()
    pairs, table, result, refit = market.fitted()
    assert_frames_equal(run.frame.drop(columns="index_smoothed"), result.to_frame())

    vol, rev = volatility(result, 3), revision(table, refit, result)
    got = diagnostics_csv(run)
    want = diagnostics_frame(result, vol, rev)
    assert list(got.columns) == DIAG_COLUMNS and len(got) == (G + 1) * T
    assert got["group"].tolist() == want["group"].tolist()
    assert got["period"].tolist() == want["period"].tolist()
    assert got["period"].iloc[0] == "2014-01"
    np.testing.assert_array_equal(got["n_revisions"], rev.count.ravel())
    assert_close_columns(got, want, ["change_pct", "volatility", "revision_mean", "revision_median"])
    assert got["revision_mean"].notna().sum() > (G + 1) * (T - 2)

    s = run.summary["diagnostics"]
    assert s["volatility_window"] == 3
    for k, g in enumerate(result.groups):
        assert s["mean_volatility"][str(g)] == pytest.approx(np.nanmean(vol[k]), rel=1e-9)
        assert s["revision"]["mean"][str(g)] == pytest.approx(rev.overall_mean[k], rel=1e-9, abs=1e-12)
        assert s["revision"]["median"][str(g)] == pytest.approx(rev.overall_median[k], rel=1e-9, abs=1e-12)
    assert s["revision"]["vintages"] == T - 1

    acc = accuracy(pairs, table, refit, result, CPU, 5)
    assert_accuracy_csv(run, acc)
    assert acc.overall["n_scored"] == N
    assert "accuracy.csv" in run.summary["outputs"] and "diagnostics.csv" in run.summary["outputs"]

    smoothed = smooth(result, 3).ravel()
    np.testing.assert_allclose(run.frame["index_smoothed"], smoothed, rtol=1e-9, atol=0)
    csv = pd.read_csv(run.dir / "index.csv", dtype={"group": str, "period": str})
    assert csv.columns[-1] == "index_smoothed"
    np.testing.assert_allclose(csv["index_smoothed"], smoothed, rtol=1e-9, atol=0)


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_diagnostics_switches(tmp_path: Path, market: Market) -> None:
    run = run_app(tmp_path, *SYNTH, "diagnostics.revision=false", "diagnostics.volatility_window=5").ok()
    got = diagnostics_csv(run)
    assert list(got.columns) == DIAG_COLUMNS[:4]
    _, _, result, _ = market.fitted()
    assert_close_columns(got, diagnostics_frame(result, volatility(result, 5), None), ["volatility"])
    assert got.groupby("group")["volatility"].apply(lambda v: v.iloc[:5].isna().all()).all()
    s = run.summary
    assert "revision" not in s["diagnostics"] and "accuracy" not in s["diagnostics"]
    assert s["diagnostics"]["volatility_window"] == 5
    assert not (run.dir / "accuracy.csv").exists() and "accuracy.csv" not in s["outputs"]
    assert "index_smoothed" not in run.frame.columns


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_accuracy_of_the_pooled_index(tmp_path: Path) -> None:
    """index.groups=false: the cross-validation of the pooled index (pairs of several groups read as one)."""
    pairs = make_pairs(n=6000, seed=22)
    path = tmp_path / "pairs.parquet"
    seed_frame(pairs, group="int").to_parquet(path, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}", "index.groups=false", "diagnostics.accuracy_folds=4")
    run.ok()
    lib = gpu_hpi.prepare_pairs(
        pairs["prev"].to_numpy(), pairs["recent"].to_numpy(), pairs["y"].to_numpy(), None, n_periods=36, backend=CPU
    )
    table = gpu_hpi.build_cell_table(lib, CPU)
    result = gpu_hpi.fit_index(table, backend=CPU, period_labels=month_labels(np.arange(START_MONTH, START_MONTH + 36)))

    assert_frames_equal(run.frame, result.to_frame())
    acc = accuracy(lib, table, Refit(), result, CPU, 4)
    assert_accuracy_csv(run, acc)
    assert pd.read_csv(run.dir / "accuracy.csv")["group"].tolist() == ["ALL"]
    assert acc.overall["n_scored"] == len(pairs)


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_synthetic_pooled_only(tmp_path: Path, market: Market) -> None:
    run = run_app(tmp_path, *SYNTH, "index.groups=false").ok()
    want = market.expected()
    assert_frames_equal(run.frame, want[want["group"] == "ALL"].reset_index(drop=True))


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_pipeline_writes_the_kinds_and_vintages(tmp_path: Path) -> None:
    cfg = compose_config(
        "backend=cpu",
        "data.n_pairs=30000",
        "output.plot=false",
        "diagnostics.in_sample_error=true",
        "diagnostics.forecast_error=true",
        "diagnostics.vintages=true",
        "diagnostics.accuracy_folds=3",
    )
    summary = pipeline.run(cfg, tmp_path)
    accuracy = pd.read_csv(tmp_path / "accuracy.csv")
    assert accuracy["kind"].unique().tolist() == ["kfold", "in_sample", "forecast"]
    assert (accuracy.loc[accuracy["kind"] != "kfold", "rmse"] > 0).all()
    diagnostics = summary["diagnostics"]
    for kind in ("in_sample", "forecast"):  # per index, as accuracy.csv: a pair is in its region's and the pooled
        rows = accuracy[accuracy["kind"] == kind]
        per_row = dict(zip(rows["group"].astype(str), rows["n_scored"], strict=True))
        assert diagnostics[f"accuracy_{kind}"]["n_scored"] == per_row
        pooled = rows[rows["group"] == "ALL"]
        assert int(pooled["n_scored"].iloc[0] + pooled["n_unscored"].iloc[0]) == summary["n_pairs_used_pooled"] == 30000
    stored = pd.read_parquet(tmp_path / "vintages.parquet")
    assert list(stored.columns) == ["vintage", "group", "period", "log_index", "index"]
    assert stored["vintage"].nunique() == 122


# --------------------------------------------------------------------------------------------------
# gaps filled, seasons adjusted


def write_pairs_with_a_gap(path: Path) -> Path:
    """Monthly pairs over 2014-01..2019-12 that never touch 2016-06: its index is unidentified."""
    rng = np.random.default_rng(4)
    n = 40_000
    i = rng.integers(0, 71, n)
    j = np.minimum(i + rng.integers(1, 24, n), 71)
    keep = (i != 29) & (j != 29) & (i < j)
    i, j = i[keep], j[keep]
    truth = np.cumsum(rng.normal(0.004, 0.01, 72)) + 0.02 * np.sin(2 * np.pi * np.arange(72) / 12)
    month = np.datetime64("2014-01", "M")
    frame = pd.DataFrame(
        {
            "group_id": rng.integers(0, 2, i.size),
            "PrevYearMonth": (month + i).astype("datetime64[ns]"),
            "RecentYearMonth": (month + j).astype("datetime64[ns]"),
            "LogPriceDiff": truth[j] - truth[i] + rng.normal(0, 0.05, i.size),
        }
    )
    frame.to_parquet(path, index=False)
    return path


def run(tmp_path: Path, *overrides: str) -> tuple[dict[str, Any], pd.DataFrame]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_pairs_with_a_gap(tmp_path / "pairs.parquet")
    cfg = compose_config("backend=cpu", "data=pairs", f"data.path={path}", "output.plot=false", *overrides)
    out = tmp_path / "out"
    summary = pipeline.run(cfg, out)
    return summary, pd.read_csv(out / "index.csv")


def test_pipeline_fill_and_adjust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_hpi.app import outputs

    _, plain = run(tmp_path / "plain")
    assert "filled" not in plain and "index_sa" not in plain
    drawn: dict[str, Any] = {}

    def regions_chart(result: Any, path: str, level: float, columns: dict[str, Any]) -> list[str]:
        drawn.update(columns)  # what the chart is given (drawing it: tests/unit/test_charts.py)
        Path(path).write_bytes(b"")
        return []

    monkeypatch.setattr(outputs, "regions_chart", regions_chart)
    summary, frame = run(
        tmp_path / "both", "index.fill=linear", "index.seasonal_adjust=stl", "output.plot_regions=true"
    )
    assert {"filled", "index_sa"} <= set(drawn)  # regions.png draws the filled periods and the SA series
    gap = frame["period"] == "2016-06"
    assert plain.loc[gap, "log_index"].isna().all()
    assert frame.loc[gap, "filled"].all() and not frame.loc[~gap, "filled"].any()
    assert summary["filled_periods"] == int(gap.sum()) == 3  # two regions and ALL
    assert frame.loc[gap, "se"].isna().all()  # no standard error for a filled period
    for group, rows in frame.groupby("group"):
        series = rows["log_index"].to_numpy()
        k = int(np.flatnonzero(rows["period"].to_numpy() == "2016-06")[0])
        assert series[k] == pytest.approx((series[k - 1] + series[k + 1]) / 2, abs=1e-12), group
        assert rows["index_sa"].notna().all() and rows["index_sa"].iloc[0] == pytest.approx(100.0)
    # the estimates themselves are unchanged
    np.testing.assert_allclose(frame.loc[~gap, "log_index"], plain.loc[~gap, "log_index"], rtol=0, atol=0)
    assert sorted(summary["seasonal_adjust"]["adjusted"]) == ["0", "1", "ALL"]


def test_seasonal_adjustment_refused_for_years_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="monthly or quarterly"):
        run(tmp_path, "index.periodicity=year", "index.seasonal_adjust=stl")


# --------------------------------------------------------------------------------------------------
# bad values: exit 2, one line, no outputs


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize(
    "override, fragments",
    [
        ("diagnostics.smooth_window=4", ("diagnostics.smooth_window", "odd", "4")),
        ("diagnostics.smooth_window=1", ("diagnostics.smooth_window", "1")),
        ("diagnostics.accuracy_folds=1", ("diagnostics.accuracy_folds", "1")),
        ("diagnostics.volatility_window=1", ("diagnostics.volatility_window", "1")),
    ],
)
def test_bad_values(tmp_path: Path, override: str, fragments: tuple[str, ...]) -> None:
    run_app(tmp_path, "data.n_pairs=3000", "data.n_periods=24", "data.n_groups=2", override).assert_failed(*fragments)
