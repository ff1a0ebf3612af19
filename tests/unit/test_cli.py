"""End-to-end tests of the command line: `python -m gpu_hpi [hydra overrides]`, run in-process by
`helpers.run_app` (a real subprocess where a test needs one, marked slow).

The expected indices come from the independent reference (tests/reference.py, via
`helpers.expected_frame`) on the same pairs, with the periods converted here independently of the
package's readers (absolute month = year * 12 + month - 1).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import (
    COLUMNS,
    FLOATS,
    OUTPUTS,
    START_MONTH,
    SUMMARY_KEYS,
    assert_frames_equal,
    expected_frame,
    make_pairs,
    month_labels,
    q,
    run_app,
    seed_frame,
)

import gpu_hpi
from gpu_hpi.synthetic import SyntheticMarket

# --------------------------------------------------------------------------------------------------
# 1. the embedded synthetic market


def test_default_synthetic_run(tmp_path: Path) -> None:
    n, t, g, seed = 50_000, 123, 3, 20140101
    run = run_app(tmp_path, f"data.n_pairs={n}", f"data.n_groups={g}", f"data.seed={seed}", plot=True).ok()
    for name in OUTPUTS:
        assert (run.dir / name).is_file() and (run.dir / name).stat().st_size > 0, name
    assert (run.dir / "index.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run.dir.glob(".*.tmp")), "temporary files left behind"

    csv = run.csv
    assert list(csv.columns) == COLUMNS
    assert list(run.frame.columns) == COLUMNS
    assert sorted(csv["group"].unique()) == ["0", "1", "2", "ALL"]
    periods = csv.loc[csv["group"] == "ALL", "period"].tolist()
    assert periods == month_labels(np.arange(START_MONTH, START_MONTH + t)).tolist()
    # the CSV and the parquet hold the same numbers (the CSV with 10 significant digits)
    pqf = run.frame
    for col in FLOATS:
        np.testing.assert_allclose(csv[col].to_numpy(float), pqf[col].to_numpy(float), rtol=1e-9, atol=1e-12)

    s = run.summary
    assert set(s) >= SUMMARY_KEYS, SUMMARY_KEYS - set(s)
    assert s["n_pairs_read"] == n and s["n_pairs_used"] == n and s["dropped"] == {}
    assert (s["method"], s["solver"], s["n_periods"], s["n_groups"]) == ("bmn", "normal", t, g)
    assert s["backend"] in ("cpu", "gpu") and s["device"].startswith(s["backend"].upper())
    assert (s["first_period"], s["last_period"], s["base_period"]) == ("2014-01", "2024-03", "2014-01")
    assert set(s["outputs"]) == set(OUTPUTS)
    assert s["peak_host_bytes"] > 0
    if s["backend"] == "cpu":
        assert s["peak_device_bytes"] is None
    else:
        assert s["peak_device_bytes"] > 0
    assert all(v >= 0 for v in s["timings_s"].values()) and "solve" in s["timings_s"]

    # The error against the truth, recomputed here from the market's true index: it must agree with
    # the summary, and be what 50k pairs can deliver (se ~0.01 per month; the max over 369 estimates
    # is about 3 se, seeds 1..6 give 0.020-0.034).
    market = SyntheticMarket.create(n, t, g, seed, 0.1, 30.0)
    est = pqf[pqf["group"] != "ALL"]
    log_index = est["log_index"].to_numpy().reshape(g, t)
    se = est["se"].to_numpy().reshape(g, t)
    err = np.abs(log_index - market.true_log_index)
    assert s["max_abs_error_vs_true_log_index"] == pytest.approx(err.max(), abs=1e-12)
    assert s["max_abs_error_vs_true_log_index"] < 0.06
    assert np.max(err[:, 1:] / se[:, 1:]) < 5.0  # errors consistent with the reported standard errors

    # the same pairs through the library
    grp, prev, recent, y = market.arrays()
    want = expected_frame(prev.astype(np.int64) + START_MONTH, recent.astype(np.int64) + START_MONTH, y, grp)
    assert_frames_equal(pqf, want)

    assert f"{n:,} of {n:,} pairs" in run.stdout
    assert "2014-01..2024-03" in run.stdout and "max |error| against the true log index" in run.stdout


# --------------------------------------------------------------------------------------------------
# 2.-4. input formats


@pytest.mark.parametrize(
    "day, group", [(1, "str"), (15, "int"), (28, "str")], ids=["month-start-str", "mid-month-int", "late-str"]
)
def test_parquet_timestamps(tmp_path: Path, day: int, group: str) -> None:
    pairs = make_pairs(seed=day)
    df = seed_frame(pairs, day=day, group=group)
    assert df["PrevYearMonth"].dtype.kind == "M"
    path = tmp_path / "pairs.parquet"
    df.to_parquet(path, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}").ok()

    prev_abs = df["PrevYearMonth"].dt.year.to_numpy() * 12 + df["PrevYearMonth"].dt.month.to_numpy() - 1
    recent_abs = df["RecentYearMonth"].dt.year.to_numpy() * 12 + df["RecentYearMonth"].dt.month.to_numpy() - 1
    want = expected_frame(prev_abs, recent_abs, df["LogPriceDiff"], df["group_id"].to_numpy())
    got = run.frame
    assert_frames_equal(got, want)
    labels = {"int": ["0", "1", "2", "ALL"], "str": ["east", "north", "south", "ALL"]}[group]
    assert sorted(got["group"].unique()) == sorted(labels)
    s = run.summary
    assert s["n_pairs_read"] == len(df) and s["dropped"] == {}
    assert (s["first_period"], s["last_period"], s["n_periods"]) == ("2014-01", "2016-12", 36)


def test_parquet_timezone_aware_timestamps(tmp_path: Path) -> None:
    """Local month starts in a zone east of UTC are the previous day in UTC: still that month."""
    pairs = make_pairs(seed=11)
    df = seed_frame(pairs, group="int")
    for col in ("PrevYearMonth", "RecentYearMonth"):
        df[col] = df[col].dt.tz_localize("Europe/Berlin")
    path = tmp_path / "tz.parquet"
    df.to_parquet(path, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}").ok()
    want = expected_frame(pairs["prev"] + START_MONTH, pairs["recent"] + START_MONTH, pairs["y"], pairs["g"].to_numpy())
    assert_frames_equal(run.frame, want)


@pytest.mark.parametrize("fmt", ["csv", "parquet-dictionary"])
def test_string_periods(tmp_path: Path, fmt: str) -> None:
    pairs = make_pairs(seed=3)
    df = pd.DataFrame(
        {
            "group_id": np.asarray(["a", "b", "c"], dtype=object)[pairs["g"]],
            "PrevYearMonth": month_labels(pairs["prev"].to_numpy() + START_MONTH),
            "RecentYearMonth": month_labels(pairs["recent"].to_numpy() + START_MONTH),
            "LogPriceDiff": pairs["y"],
        }
    )
    if fmt == "csv":
        path = tmp_path / "pairs.csv"
        df.to_csv(path, index=False, float_format="%.17g")
        y = pd.read_csv(path)["LogPriceDiff"].to_numpy()  # the exact values the CLI reads
    else:
        path = tmp_path / "pairs.parquet"
        for col in ("PrevYearMonth", "RecentYearMonth"):
            df[col] = df[col].astype("category")
        df.to_parquet(path, index=False)
        assert pa.types.is_dictionary(pq.read_schema(path).field("PrevYearMonth").type)
        y = df["LogPriceDiff"].to_numpy()
    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}").ok()

    # periods parsed here from the strings themselves
    def parse(col: pd.Series) -> np.ndarray:
        parts = col.astype(str).str.split("-", expand=True).astype(int)
        return (parts[0] * 12 + parts[1] - 1).to_numpy()

    want = expected_frame(parse(df["PrevYearMonth"]), parse(df["RecentYearMonth"]), y, df["group_id"].to_numpy(object))
    assert_frames_equal(run.frame, want)


def test_integer_periods_index_with_start(tmp_path: Path) -> None:
    """data.start is the period of position 0 and also the window's first period."""
    pairs = make_pairs(seed=4)
    # positions counted from data.start = 2013-07; the pairs use positions 6.. (2014-01 on), so the
    # window starts at data.start with six periods that no pair touches
    offset = 6
    df = pd.DataFrame(
        {
            "group_id": pairs["g"],
            "PrevYearMonth": pairs["prev"] + offset,
            "RecentYearMonth": pairs["recent"] + offset,
            "LogPriceDiff": pairs["y"],
        }
    )
    path = tmp_path / "pairs.parquet"
    df.to_parquet(path, index=False)
    run = run_app(
        tmp_path, "data=pairs", f"data.path={q(path)}", "data.start=2013-07", "index.base_period=2014-01"
    ).ok()
    s = run.summary
    assert (s["first_period"], s["last_period"], s["n_periods"], s["base_period"]) == (
        "2013-07",
        "2016-12",
        42,
        "2014-01",
    )
    with pytest.warns(gpu_hpi.IdentificationWarning, match="not identified"):
        want = expected_frame(
            pairs["prev"] + START_MONTH,
            pairs["recent"] + START_MONTH,
            pairs["y"],
            pairs["g"].to_numpy(),
            first=START_MONTH - offset,
            base_period=offset,
        )
    got = run.frame
    assert_frames_equal(got, want)
    early = got["period"] < "2014-01"
    assert early.sum() == 4 * offset
    assert got.loc[early, "log_index"].isna().all() and (got.loc[early, "n_pairs"] == 0).all()
    assert got.loc[~early, "log_index"].notna().all()
    assert s["n_unidentified"] == 4 * offset


def test_integer_periods_index_and_yyyymm(tmp_path: Path) -> None:
    pairs = make_pairs(seed=5)
    want = expected_frame(pairs["prev"] + START_MONTH, pairs["recent"] + START_MONTH, pairs["y"], pairs["g"].to_numpy())

    idx = pd.DataFrame(
        {
            "group_id": pairs["g"],
            "PrevYearMonth": pairs["prev"].astype(np.int32),
            "RecentYearMonth": pairs["recent"].astype(np.int32),
            "LogPriceDiff": pairs["y"],
        }
    )
    p1 = tmp_path / "index.parquet"
    idx.to_parquet(p1, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={q(p1)}", "data.start=2014-01", name="index").ok()
    assert_frames_equal(run.frame, want)

    absp, absr = pairs["prev"] + START_MONTH, pairs["recent"] + START_MONTH
    ym = pd.DataFrame(
        {
            "group_id": pairs["g"],
            "PrevYearMonth": (absp // 12) * 100 + absp % 12 + 1,
            "RecentYearMonth": (absr // 12) * 100 + absr % 12 + 1,
            "LogPriceDiff": pairs["y"],
        }
    )
    assert ym["PrevYearMonth"].min() == 201401 and ym["RecentYearMonth"].max() == 201612
    p2 = tmp_path / "yyyymm.csv"
    ym.to_csv(p2, index=False, float_format="%.17g")
    run = run_app(tmp_path, "data=pairs", f"data.path={q(p2)}", "data.integer_periods=yyyymm", name="yyyymm").ok()
    assert_frames_equal(run.frame, want)


def test_integer_periods_without_start_is_an_error(tmp_path: Path) -> None:
    pairs = make_pairs(n=500, seed=6)
    df = pd.DataFrame(
        {
            "group_id": pairs["g"],
            "PrevYearMonth": pairs["prev"],
            "RecentYearMonth": pairs["recent"],
            "LogPriceDiff": pairs["y"],
        }
    )
    path = tmp_path / "pairs.parquet"
    df.to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}").assert_failed("data.start", "PrevYearMonth")


# --------------------------------------------------------------------------------------------------
# 5.-6. periodicity and base period


def test_quarterly_index(tmp_path: Path) -> None:
    pairs = make_pairs(n=8000, seed=7)
    df = seed_frame(pairs, day=10, group="str")
    path = tmp_path / "pairs.parquet"
    df.to_parquet(path, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}", "index.periodicity=quarter").ok()

    def quarter(col: pd.Series) -> np.ndarray:
        return (col.dt.year * 4 + (col.dt.month - 1) // 3).to_numpy()

    qp, qr = quarter(df["PrevYearMonth"]), quarter(df["RecentYearMonth"])
    want = expected_frame(
        qp,
        qr,
        df["LogPriceDiff"],
        df["group_id"].to_numpy(),
        labels_of=lambda a: np.asarray([f"{x // 4}-Q{x % 4 + 1}" for x in a], dtype=object),
    )
    got = run.frame
    assert got.loc[got["group"] == "ALL", "period"].tolist()[:5] == [
        "2014-Q1",
        "2014-Q2",
        "2014-Q3",
        "2014-Q4",
        "2015-Q1",
    ]
    assert_frames_equal(got, want)
    s = run.summary
    assert (s["periodicity"], s["n_periods"], s["first_period"], s["last_period"]) == (
        "quarter",
        12,
        "2014-Q1",
        "2016-Q4",
    )
    # pairs within one quarter cannot be used: their own reason
    same = int((qp == qr).sum())
    assert same > 0 and not (qp > qr).any()
    assert s["dropped"] == {"same_period": same}
    assert s["n_pairs_read"] == len(df) and s["n_pairs_used"] == len(df) - same


def test_base_period_override(tmp_path: Path) -> None:
    pairs = make_pairs(n=12000, n_periods=60, seed=8)  # 2014-01 .. 2018-12
    df = seed_frame(pairs, group="int")
    path = tmp_path / "pairs.parquet"
    df.to_parquet(path, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}", "index.base_period=2017-11").ok()
    base = (2017 - 2014) * 12 + 10
    want = expected_frame(
        pairs["prev"] + START_MONTH, pairs["recent"] + START_MONTH, pairs["y"], pairs["g"].to_numpy(), base_period=base
    )
    got = run.frame
    assert_frames_equal(got, want)
    at_base = got[got["period"] == "2017-11"]
    assert len(at_base) == 4
    np.testing.assert_allclose(at_base["index"], 100.0, rtol=0, atol=1e-12)
    assert (at_base["se"] == 0).all() and (at_base["log_index"] == 0).all()
    assert not np.isclose(got.loc[got["period"] == "2014-01", "index"], 100.0).any()
    assert run.summary["base_period"] == "2017-11"


# --------------------------------------------------------------------------------------------------
# 7. streaming


def test_streaming_batches_directories_and_globs(tmp_path: Path) -> None:
    pairs = make_pairs(n=20000, seed=9).sort_values("prev", kind="stable").reset_index(drop=True)
    df = seed_frame(pairs, group="str")  # sorted by period: the batches cover different windows
    single = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), single, row_group_size=1000)
    assert pq.ParquetFile(single).num_row_groups == 20
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, chunk in enumerate(np.array_split(np.arange(len(df)), 3)):
        df.iloc[chunk].to_parquet(parts / f"part-{k}.parquet", index=False)

    small = run_app(tmp_path, "data=pairs", f"data.path={q(single)}", "data.batch_rows=777", name="small").ok()
    big = run_app(tmp_path, "data=pairs", f"data.path={q(single)}", "data.batch_rows=10000000", name="big").ok()
    directory = run_app(tmp_path, "data=pairs", f"data.path={q(parts)}", "data.batch_rows=5000", name="dir").ok()
    globbed = run_app(tmp_path, "data=pairs", f"data.path={q(parts / 'part-*.parquet')}", name="glob").ok()

    reference = big.frame
    assert_frames_equal(small.frame, reference, atol=1e-10)
    assert_frames_equal(directory.frame, reference, atol=1e-10)
    assert_frames_equal(globbed.frame, reference, atol=1e-10)
    for col in FLOATS:  # the CSVs too (10 significant digits)
        np.testing.assert_allclose(small.csv[col].to_numpy(float), big.csv[col].to_numpy(float), rtol=1e-9, atol=1e-10)
    for r in (small, big, directory, globbed):
        assert r.summary["n_pairs_read"] == len(df)
    want = expected_frame(
        pairs["prev"] + START_MONTH, pairs["recent"] + START_MONTH, pairs["y"], df["group_id"].to_numpy()
    )
    assert_frames_equal(reference, want)


# --------------------------------------------------------------------------------------------------
# 8. invalid pairs


def test_invalid_pairs_are_dropped_and_counted(tmp_path: Path) -> None:
    pairs = make_pairs(n=6000, seed=12)
    df = seed_frame(pairs, group="str")
    n = len(df)
    # out of the window 2014-01..2016-06 set by data.end below
    late = (df["RecentYearMonth"] > "2016-06-30").to_numpy()
    # invalid rows of one reason each, among in-window rows past the chain rows (the first 105)
    rng = np.random.default_rng(0)
    candidates = np.nonzero(~late & (np.arange(n) >= 200))[0]
    bad = rng.choice(candidates, 60, replace=False)
    nan_y, null_y, swapped, equal, null_group = bad[:12], bad[12:20], bad[20:35], bad[35:45], bad[45:60]
    y = df["LogPriceDiff"].to_numpy().copy()
    y[nan_y] = np.nan
    y_mask = np.zeros(n, dtype=bool)
    y_mask[null_y] = True
    prev = df["PrevYearMonth"].to_numpy().copy()
    recent = df["RecentYearMonth"].to_numpy().copy()
    prev[swapped], recent[swapped] = recent[swapped], df["PrevYearMonth"].to_numpy()[swapped]
    recent[equal] = prev[equal]
    g_mask = np.zeros(n, dtype=bool)
    g_mask[null_group] = True
    table = pa.table(
        {
            "group_id": pa.array(df["group_id"].to_numpy(object), type=pa.string(), mask=g_mask),
            "PrevYearMonth": pa.array(prev),
            "RecentYearMonth": pa.array(recent),
            "LogPriceDiff": pa.array(y, mask=y_mask),
        }
    )
    assert table.column("LogPriceDiff").null_count == len(null_y)
    assert int(np.isnan(table.column("LogPriceDiff").to_numpy(zero_copy_only=False)).sum()) == len(nan_y) + len(null_y)
    path = tmp_path / "pairs.parquet"
    pq.write_table(table, path)

    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}", "data.end=2016-06").ok()
    s = run.summary
    assert s["dropped"] == {
        "missing_group": len(null_group),
        "period_out_of_range": int(late.sum()),
        "same_period": len(equal),
        "prev_not_before_recent": len(swapped),
        "nonfinite_y": len(nan_y) + len(null_y),
    }
    assert s["n_pairs_read"] == n
    valid = ~late & ~np.isin(np.arange(n), bad)
    assert s["n_pairs_used"] == int(valid.sum())
    assert f"{int(valid.sum()):,} of {n:,} pairs" in run.stdout and "dropped:" in run.stdout
    assert s["last_period"] == "2016-06"
    v = df[valid]
    months = lambda c: (c.dt.year * 12 + c.dt.month - 1).to_numpy()  # noqa: E731
    want = expected_frame(
        months(v["PrevYearMonth"]),
        months(v["RecentYearMonth"]),
        v["LogPriceDiff"],
        v["group_id"].to_numpy(object),
        last=START_MONTH + 29,
    )
    assert_frames_equal(run.frame, want)

    strict = run_app(
        tmp_path, "data=pairs", f"data.path={q(path)}", "data.end=2016-06", "data.strict=true", name="strict"
    )
    strict.assert_failed("strict", "nonfinite_y")


def _null_period_file(tmp_path: Path) -> tuple[Path, int, int]:
    pairs = make_pairs(n=4000, seed=13)
    df = seed_frame(pairs, group="int")
    df.loc[[500, 900, 1500], "PrevYearMonth"] = pd.NaT
    df.loc[[700, 2500], "RecentYearMonth"] = pd.NaT
    path = tmp_path / "nullp.parquet"
    df.to_parquet(path, index=False)
    assert pq.read_table(path).column("RecentYearMonth").null_count == 2
    return path, len(df), 5


def test_null_periods_are_counted(tmp_path: Path) -> None:
    path, n, n_null = _null_period_file(tmp_path)
    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}").ok()
    s = run.summary
    assert s["n_pairs_used"] == n - n_null  # these rows are left out (this part holds)
    assert s["dropped"] == {"missing_period": n_null}
    assert s["n_pairs_read"] == n


def test_strict_refuses_null_periods(tmp_path: Path) -> None:
    path, _, _ = _null_period_file(tmp_path)
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}", "data.strict=true").assert_failed("strict")


def test_integer_group_column_with_nulls_keeps_integer_labels(tmp_path: Path) -> None:
    pairs = make_pairs(n=3000, seed=14)
    df = seed_frame(pairs, group="int")
    df["group_id"] = df["group_id"].astype("Int64")
    df.loc[2000, "group_id"] = pd.NA
    path = tmp_path / "pairs.parquet"
    df.to_parquet(path, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={q(path)}").ok()
    assert run.summary["dropped"] == {"missing_group": 1}
    assert sorted(run.frame["group"].unique()) == ["0", "1", "2", "ALL"]


# --------------------------------------------------------------------------------------------------
# 9. iterative solvers


def test_iterative_solvers_match_normal_equations(tmp_path: Path) -> None:
    pairs = make_pairs(n=6000, seed=15)
    df = seed_frame(pairs, group="str")
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=2000)
    runs = {
        s: run_app(tmp_path, "data=pairs", f"data.path={q(path)}", f"solver={s}", "data.batch_rows=1500", name=s).ok()
        for s in ("normal", "lsqr", "lsmr")
    }
    reference = runs["normal"].frame
    for name in ("lsqr", "lsmr"):
        assert_frames_equal(runs[name].frame, reference, atol=1e-8)
        s = runs[name].summary
        assert s["solver"] == name
        for part in ("groups", "pooled"):
            info = s["solver_info"][part]
            assert info["solver"] == name
            assert isinstance(info["iterations"], int) and info["iterations"] > 0
            assert "iteration limit" not in info["stop_reason"]
    assert "iterations" not in runs["normal"].summary["solver_info"]["groups"]


# --------------------------------------------------------------------------------------------------
# 10. errors: exit 2, one line, no traceback, no outputs


@pytest.fixture
def good_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "good.parquet"
    seed_frame(make_pairs(n=2000, seed=16), group="int").to_parquet(path, index=False)
    return path


def test_error_missing_file(tmp_path: Path) -> None:
    run_app(tmp_path, "data=pairs", f"data.path={q(tmp_path / 'nope.parquet')}", plot=True).assert_failed(
        "nope.parquet"
    )


def test_error_directory_without_parquet(tmp_path: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "notes.txt").write_text("no parquet here\n")
    run_app(tmp_path, "data=pairs", f"data.path={q(d)}", plot=True).assert_failed("no .parquet files", "empty")


def test_error_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}", plot=True).assert_failed("corrupt.parquet")


def test_error_missing_column(tmp_path: Path, good_parquet: Path) -> None:
    line = run_app(
        tmp_path, "data=pairs", f"data.path={q(good_parquet)}", "data.columns.y=price_ratio", plot=True
    ).assert_failed("price_ratio")
    found = line.split("price_ratio", 1)[1]
    for col in ("group_id", "PrevYearMonth", "RecentYearMonth", "LogPriceDiff"):
        assert col in found, line


def test_error_y_column_of_strings(tmp_path: Path) -> None:
    df = seed_frame(make_pairs(n=1000, seed=17), group="int")
    df["LogPriceDiff"] = np.where(np.arange(len(df)) % 2, "up", "down")
    path = tmp_path / "strings.parquet"
    df.to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}", plot=True).assert_failed("LogPriceDiff", "numeric")


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_error_gpu_backend_without_cupy(tmp_path: Path) -> None:
    run_app(tmp_path, "backend=gpu", "data.n_pairs=1000", plot=True).assert_failed("CuPy", "pip install")


def test_error_base_period_outside_window(tmp_path: Path, good_parquet: Path) -> None:
    run_app(
        tmp_path, "data=pairs", f"data.path={q(good_parquet)}", "index.base_period=2020-01", plot=True
    ).assert_failed("2020-01", "2014-01..2016-12")


def test_error_float_period_column(tmp_path: Path) -> None:
    df = seed_frame(make_pairs(n=1000, seed=18), group="int")
    df["PrevYearMonth"] = df["PrevYearMonth"].astype(np.int64).astype(float)
    path = tmp_path / "floats.parquet"
    df.to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={q(path)}", plot=True).assert_failed("PrevYearMonth", "double")


# --------------------------------------------------------------------------------------------------
# 11. which indices


def test_groups_and_pooled_switches(tmp_path: Path, good_parquet: Path) -> None:
    base = ("data=pairs", f"data.path={q(good_parquet)}")
    full = run_app(tmp_path, *base, name="full").ok().frame
    only_all = run_app(tmp_path, *base, "index.groups=false", name="nogroups").ok()
    no_all = run_app(tmp_path, *base, "index.pooled=false", name="nopooled").ok()
    no_col = run_app(tmp_path, *base, "data.columns.group=null", name="nocolumn").ok()

    assert set(full["group"]) == {"0", "1", "2", "ALL"}
    assert set(only_all.frame["group"]) == {"ALL"} and len(only_all.frame) == 36
    assert set(no_all.frame["group"]) == {"0", "1", "2"} and len(no_all.frame) == 3 * 36
    assert set(no_col.frame["group"]) == {"ALL"} and len(no_col.frame) == 36
    pooled = full[full["group"] == "ALL"].reset_index(drop=True)
    assert_frames_equal(only_all.frame, pooled)
    assert_frames_equal(no_col.frame, pooled)
    assert_frames_equal(no_all.frame, full[full["group"] != "ALL"].reset_index(drop=True))
    assert no_col.summary["n_groups"] == 0 and only_all.summary["n_groups"] == 0
    assert no_all.summary["n_groups"] == 3
