"""Period calendars (data/calendar.py): ISO weeks, checked against datetime's own isocalendar()."""

from __future__ import annotations

import datetime

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
