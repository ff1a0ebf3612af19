"""index.periodicity=week: ISO weeks from datetime's own isocalendar(), through the calendar, both
readers of pairs, the sale records' two paths and a run."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import compose_config
from test_sql import assert_same

import gpu_hpi
from gpu_hpi.app import pipeline
from gpu_hpi.data.calendar import Calendar, days_to_period, parse_period, period_label
from gpu_hpi.data.pairing import PairingRules, make_pairs
from gpu_hpi.errors import ConfigError
from gpu_hpi.io.pairs import PairSource
from gpu_hpi.io.sales import SaleSource
from gpu_hpi.io.sql_sales import sql_sales

MONDAY_0 = datetime.date(1969, 12, 29)  # the Monday that starts week 0


def iso_label(day: datetime.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def test_calendar_weeks_are_iso_weeks() -> None:
    rng = np.random.default_rng(0)
    for offset in rng.integers(-40_000, 40_000, 500):
        day = datetime.date(1970, 1, 1) + datetime.timedelta(days=int(offset))
        week = (day - MONDAY_0).days // 7
        assert days_to_period(np.asarray([(day - datetime.date(1970, 1, 1)).days]), "week")[0] == week
        assert period_label(week, "week") == iso_label(day)
        assert parse_period(iso_label(day), "week") == week
        assert parse_period(day.isoformat(), "week") == week
    assert parse_period("2015-W53", "week") == parse_period("2015-12-31", "week")  # a 53-week year
    with pytest.raises(ConfigError, match="ISO week"):
        parse_period("2014-W53", "week")  # 2014 has 52
    firsts = Calendar("week", parse_period("2014-W01", "week"), 5).first_days()
    assert [pd.Timestamp(d).day_name() for d in firsts] == ["Monday"] * 5
    assert str(firsts[0])[:10] == "2013-12-30"


def weekly_pairs(seed: int = 0, n: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d0 = np.datetime64("2014-01-01") + rng.integers(0, 700, n)
    d1 = d0 + rng.integers(0, 200, n)  # some in the same week: same_period
    return pd.DataFrame(
        {
            "region": rng.integers(0, 3, n),
            "d0": d0.astype("datetime64[ns]"),
            "d1": d1.astype("datetime64[ns]"),
            "y": rng.normal(0, 0.1, n),
        }
    )


COLUMNS = {"group": "region", "prev": "d0", "recent": "d1", "y": "y"}


def test_both_pair_readers_read_weeks_alike(tmp_path: Path) -> None:
    frame = weekly_pairs()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "pairs.parquet")
    table = assert_same(PairSource(str(tmp_path / "pairs.parquet"), "auto", COLUMNS, periodicity="week"))
    assert table.dropped["same_period"] > 0
    # the cells against weeks computed here
    weeks = {c: ((frame[c].dt.date - MONDAY_0).map(lambda d: d.days) // 7).to_numpy() for c in ("d0", "d1")}
    first = int(min(weeks["d0"].min(), weeks["d1"].min()))
    ok = weeks["d0"] < weeks["d1"]
    want = (
        pd.Series(
            1, index=pd.MultiIndex.from_arrays([frame["region"][ok], weeks["d0"][ok] - first, weeks["d1"][ok] - first])
        )
        .groupby(level=[0, 1, 2])
        .sum()
    )
    got = pd.Series(
        table.count, index=pd.MultiIndex.from_arrays([table.group_labels[table.group], table.prev, table.recent])
    )
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False, check_dtype=False)
    # date strings, as labels parsed once per distinct value
    text = frame.assign(d0=frame["d0"].dt.strftime("%Y-%m-%d"), d1=frame["d1"].dt.strftime("%Y-%m-%d"))
    pq.write_table(pa.Table.from_pandas(text, preserve_index=False), tmp_path / "strings.parquet")
    assert_same(PairSource(str(tmp_path / "strings.parquet"), "auto", COLUMNS, periodicity="week"))


def test_sales_paired_by_weeks(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 6000
    sales = pd.DataFrame(
        {
            "p": rng.integers(0, 1500, n),
            "date": (np.datetime64("2014-01-01") + rng.integers(0, 400, n)).astype("datetime64[ns]"),
            "price": rng.uniform(1, 2, n),
        }
    )
    sales.to_parquet(tmp_path / "sales.parquet", index=False)
    source = SaleSource(str(tmp_path / "sales.parquet"), "auto", ["p"], "date", "price", periodicity="week")
    rules = PairingRules(periods_per_year=52, max_annual_return=50.0)
    got = sql_sales(source, rules, None, None, keep_pairs=True)
    raw = source.read()
    first, last = int(raw.period.min()), int(raw.period.max())
    made = make_pairs(
        raw.to_sales(gpu_hpi.resolve_backend("cpu"), first, last - first + 1), rules, gpu_hpi.resolve_backend("cpu")
    )
    assert got is not None and got.pairs is not None and got.first == first
    assert got.dropped["sale_same_period_duplicate"] == made.dropped["sale_same_period_duplicate"] > 0
    key = lambda a, b: sorted(zip(np.asarray(a).tolist(), np.asarray(b).tolist(), strict=True))  # noqa: E731
    assert key(got.pairs.prev, got.pairs.recent) == key(made.prev, made.recent)


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
