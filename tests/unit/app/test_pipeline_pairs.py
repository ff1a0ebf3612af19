"""The job on pair files (data=pairs): every period type and periodicity, the base period, the window,
streaming in batches, invalid and missing values, group ids.

The expected indices come from the independent reference (tests/reference.py, via
`helpers.expected_frame`) on the same pairs, with the periods converted here independently of the
package's readers (absolute month = year * 12 + month - 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import (
    FLOATS,
    START_MONTH,
    assert_frames_equal,
    compose_config,
    expected_frame,
    make_pairs,
    month_labels,
    q,
    run_app,
    seed_frame,
    weekly_pairs,
)

import gpu_hpi
from gpu_hpi.app import pipeline
from gpu_hpi.errors import ConfigError
from gpu_hpi.synthetic import SyntheticMarket

# --------------------------------------------------------------------------------------------------
# period types


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


def seed_pairs(n: int = 20_000, periods: int = 36, seed: int = 2) -> pd.DataFrame:
    """The synthetic market's pairs in the seed schema, the groups named zeta, mid and alpha."""
    group, prev, recent, y = SyntheticMarket.create(n, periods, 3, seed=seed).arrays()
    month = np.datetime64("2014-01", "M")
    return pd.DataFrame(
        {
            "group_id": np.asarray(["zeta", "mid", "alpha"], dtype=object)[group],
            "PrevYearMonth": (month + prev.astype(np.int64)).astype("datetime64[ns]"),
            "RecentYearMonth": (month + recent.astype(np.int64)).astype("datetime64[ns]"),
            "LogPriceDiff": y,
        }
    )


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_yyyymm_numbers_read_as_positions_are_refused(tmp_path: Path) -> None:
    frame = seed_pairs(n=2_000)
    months = frame["PrevYearMonth"].dt.year * 100 + frame["PrevYearMonth"].dt.month
    recent = frame["RecentYearMonth"].dt.year * 100 + frame["RecentYearMonth"].dt.month
    path = tmp_path / "yyyymm.parquet"
    frame.assign(PrevYearMonth=months, RecentYearMonth=recent).to_parquet(path, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={path}", "data.start=2014-01")
    run.assert_failed("yyyymm")


# --------------------------------------------------------------------------------------------------
# periodicity, base period, window


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


def test_weekly_run(tmp_path: Path) -> None:
    frame = weekly_pairs(1, 20_000).rename(
        columns={"region": "group_id", "d0": "PrevYearMonth", "d1": "RecentYearMonth", "y": "LogPriceDiff"}
    )
    frame.to_parquet(tmp_path / "pairs.parquet", index=False)
    cfg = compose_config(
        "backend=cpu",
        "data=pairs",
        f"data.path={tmp_path / 'pairs.parquet'}",
        "index.periodicity=week",
        "index.base_period=2014-W10",
        "index.min_pairs=1",
        "output.plot_regions=true",
    )
    summary = pipeline.run(cfg, tmp_path / "out")
    index = pd.read_csv(tmp_path / "out" / "index.csv")
    assert summary["periodicity"] == "week" and summary["first_period"] == "2014-W01"
    assert summary["base_period"] == "2014-W10" and summary["dropped"]["same_period"] > 0
    assert index["period"].str.fullmatch(r"\d{4}-W\d{2}").all()
    assert np.isfinite(index.loc[index["group"] == "ALL", "log_index"]).sum() > 90
    weekly_sa = compose_config("index.periodicity=week", "index.seasonal_adjust=stl")
    with pytest.raises(ConfigError, match="monthly or quarterly"):
        pipeline.run(weekly_sa, tmp_path / "sa")


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


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_reversed_window_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    seed_pairs(n=2_000).to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={path}", "data.start=2016-01", "data.end=2015-01").assert_failed(
        "before"
    )


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_data_end_before_a_later_part(tmp_path: Path) -> None:
    frame = seed_pairs(periods=36)
    early = frame[frame["RecentYearMonth"] < np.datetime64("2015-06")]
    late = frame[frame["PrevYearMonth"] >= np.datetime64("2016-03")]
    (tmp_path / "ds").mkdir()
    early.to_parquet(tmp_path / "ds" / "a.parquet", index=False)
    late.to_parquet(tmp_path / "ds" / "b.parquet", index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'ds'}", "data.end=2015-12").ok()
    assert run.summary["last_period"] == "2015-12"
    assert run.summary["dropped"]["period_out_of_range"] == len(late)
    assert run.summary["n_pairs_read"] == len(early) + len(late)


# --------------------------------------------------------------------------------------------------
# streaming


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
def test_batch_rows_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    seed_pairs(n=1_000).to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={path}", "data.batch_rows=0").assert_failed("batch_rows")


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
# invalid pairs, missing values, group ids


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


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@pytest.mark.parametrize("overrides", [["solver=lsqr"], ["method=robust"], ["diagnostics.accuracy_folds=3"]])
def test_categorical_group_ids_out_of_alphabetical_order(tmp_path: Path, overrides: list[str]) -> None:
    frame = seed_pairs()
    plain = tmp_path / "plain.parquet"
    frame.to_parquet(plain, index=False)
    categorical = tmp_path / "categorical.parquet"
    frame.assign(group_id=pd.Categorical(frame["group_id"], categories=["zeta", "mid", "alpha"])).to_parquet(
        categorical, index=False
    )
    common = ["data=pairs", "data.batch_rows=5000", "diagnostics.revision=false", *overrides]
    a = run_app(tmp_path, *common, f"data.path={plain}", name="plain").ok()
    b = run_app(tmp_path, *common, f"data.path={categorical}", name="categorical").ok()
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=False, rtol=1e-10, atol=1e-12)
    assert list(a.frame["group"].unique()) == ["alpha", "mid", "zeta", "ALL"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_absurd_log_ratio_is_dropped_and_counted_never_an_infinite_index(tmp_path: Path, fmt: str) -> None:
    """One finite log ratio of 1e300 made its region and ALL infinite (exit 0); now it is dropped
    and counted as absurd_y, by DuckDB's query and by the pyarrow reader alike."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from helpers import run_app, seed_pairs

    table = seed_pairs(3000, 6, nulls=False)
    y = table.column("LogPriceDiff").to_numpy().copy()
    y[[5, 17]] = [1e300, -40.0]
    table = table.set_column(3, "LogPriceDiff", pa.array(y))
    path = tmp_path / f"pairs.{fmt}"
    (pq.write_table if fmt == "parquet" else pacsv.write_csv)(table, path)
    run = run_app(tmp_path, "data=pairs", f"data.path={path}").ok()
    assert run.summary["dropped"].get("absurd_y") == 2
    assert not np.isinf(run.frame[["log_index", "index", "se"]].to_numpy()).any()
    assert np.isfinite(run.frame.loc[run.frame["group"] == "ALL", "index"]).all()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_price_no_house_has_is_dropped_never_an_overflowing_price_sum(tmp_path: Path, fmt: str) -> None:
    """Prices of 1e200 (finite, a sensible ratio) made the arithmetic index's price sums overflow
    (their squares: inf); they are dropped and counted as absurd_price by every reader."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from helpers import run_app, seed_pairs

    table = seed_pairs(3000, 7, nulls=False)
    y = table.column("LogPriceDiff").to_numpy()
    p0 = np.full(len(y), 3e8)
    p0[[3, 9, 11]] = 1e200
    table = table.append_column("p0", pa.array(p0)).append_column("p1", pa.array(p0 * np.exp(y)))
    path = tmp_path / f"pairs.{fmt}"
    (pq.write_table if fmt == "parquet" else pacsv.write_csv)(table, path)
    prices = ("data.columns.price_prev=p0", "data.columns.price_recent=p1")
    run = run_app(tmp_path, "data=pairs", f"data.path={path}", "method=arithmetic", *prices).ok()
    assert run.summary["dropped"]["absurd_price"] == 3 and set(run.summary["dropped"]) == {
        "same_period",
        "absurd_price",
    }
    assert np.isfinite(run.frame.loc[run.frame["group"] == "ALL", "index"]).all()


def test_csv_region_codes_with_leading_zeros_stay_apart(tmp_path: Path) -> None:
    """Codes '0003' and '3' in a CSV pair file are two regions, as in a parquet file of strings
    (the CSV reader's guessed integer type merged them into one, exit 0)."""
    from helpers import seed_pairs

    frame = seed_pairs(4000, 21, nulls=False).to_pandas()
    frame["group_id"] = [f"{g:04d}" if g % 2 else str(g) for g in frame["group_id"]]
    frame.loc[::2, "group_id"] = "0003"
    frame.loc[1::4, "group_id"] = "3"
    frame.to_csv(tmp_path / "pairs.csv", index=False)
    frame.to_parquet(tmp_path / "pairs.parquet", index=False)
    runs = [
        run_app(tmp_path, "data=pairs", f"data.path={q(tmp_path / name)}", name=f"run-{name}").ok()
        for name in ("pairs.csv", "pairs.parquet")
    ]
    assert {"0003", "3"} <= set(runs[0].frame["group"]) and runs[0].summary["n_groups"] == runs[1].summary["n_groups"]
    assert_frames_equal(runs[0].frame, runs[1].frame, atol=1e-12)


def test_blank_period_text_is_a_missing_period(tmp_path: Path) -> None:
    """'' or '  ' in a column of 'YYYY-MM' text (a parquet file, a frame) is a missing period, as a
    CSV file's empty field is: dropped and counted (every read was refused: cannot read period '')."""
    from helpers import seed_pairs

    import gpu_hpi

    frame = seed_pairs(3000, 22, nulls=False).to_pandas()
    for column in ("PrevYearMonth", "RecentYearMonth"):
        frame[column] = frame[column].dt.strftime("%Y-%m")
    blank = frame.copy()
    blank.loc[:9, "PrevYearMonth"] = ""
    blank.loc[10:14, "RecentYearMonth"] = "  "
    nulls = frame.copy()
    nulls.loc[:14, ["PrevYearMonth"]] = None
    blank.to_parquet(tmp_path / "blank.parquet", index=False)
    nulls.to_parquet(tmp_path / "nulls.parquet", index=False)
    runs = [
        run_app(tmp_path, "data=pairs", f"data.path={q(tmp_path / name)}", name=f"run-{name}").ok()
        for name in ("blank.parquet", "nulls.parquet")
    ]
    assert (
        runs[0].summary["dropped"] == runs[1].summary["dropped"] and runs[0].summary["dropped"]["missing_period"] == 15
    )
    assert_frames_equal(runs[0].frame, runs[1].frame, atol=1e-12)
    from_frame = gpu_hpi.index_from_pairs(blank, backend="cpu")  # the Arrow reader
    assert from_frame.dropped == runs[0].summary["dropped"]
