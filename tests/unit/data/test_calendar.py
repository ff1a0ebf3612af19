"""Period calendars (data/calendar.py): ISO weeks, checked against datetime's own isocalendar()."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import MONDAY_0

from gpu_hpi.data.calendar import Calendar, days_to_period, parse_period, period_label
from gpu_hpi.errors import ConfigError


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


@pytest.mark.parametrize("label", ["2015-13", "2015-00", "2015-02-30"])
@pytest.mark.parametrize("periodicity", ["week", "month", "quarter", "year"])
def test_a_month_or_date_that_does_not_exist_is_refused(label: str, periodicity: str) -> None:
    """Month 00 or 13 (a typing slip) was read as the year's number; now it names the label."""
    with pytest.raises(ConfigError, match=f"cannot read period '{label}'"):
        parse_period(label, periodicity)


def test_pair_files_with_such_periods_are_refused(tmp_path: Path) -> None:
    from helpers import run_app

    path = tmp_path / "pairs.csv"
    path.write_text(
        "group_id,PrevYearMonth,RecentYearMonth,LogPriceDiff\n1,2015-01,2015-13,0.1\n1,2015-02,2015-05,0.1\n"
    )
    run = run_app(tmp_path, "data=pairs", f"data.path={path}")
    assert run.rc == 2 and "column 'RecentYearMonth': cannot read period '2015-13'" in run.stderr
