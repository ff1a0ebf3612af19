"""Period calendars: ISO weeks, months, quarters or years as consecutive integers, with labels.

A period is an absolute integer: year * 12 + month - 1 (months), year * 4 + quarter - 1 (quarters),
the year itself, or for weeks floor((days since 1970-01-01 + 3) / 7), the ISO week (Monday to
Sunday) counted from the one that starts on Monday 1969-12-29, labelled 'YYYY-Www' by its ISO
year; index positions are absolute periods minus the calendar's start.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from ..options import Periodicity, option_values

PER_YEAR = {"week": 52, "month": 12, "quarter": 4, "year": 1}
_LABEL = {
    "week": re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE),
    "month": re.compile(r"^(\d{4})-(\d{1,2})$"),
    "quarter": re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE),
    "year": re.compile(r"^(\d{4})$"),
}
_EPOCH = datetime.date(1970, 1, 1)


# A sanity bound on the window: 200 years of months. Far more means periods were misread (e.g.
# YYYYMM numbers taken as positions), and the T x T tables would not fit in memory anyway.
MAX_PERIODS = 2400


def check_window(first: int, last: int) -> None:
    """Refuse a window of more than MAX_PERIODS periods (or a reversed one), before any allocation."""
    if last < first:
        raise DataError(f"the period window ends ({last}) before it starts ({first})")
    if last - first + 1 > MAX_PERIODS:
        raise DataError(
            f"the pairs span {last - first + 1} periods; at most {MAX_PERIODS} are supported: check the period "
            "columns (YYYYMM numbers need data.integer_periods=yyyymm) or set data.start / data.end"
        )


def check_periodicity(periodicity: str) -> None:
    if periodicity not in PER_YEAR:
        raise ConfigError(f"periodicity must be one of {option_values(Periodicity)}, got {periodicity!r}")


def parse_period(label: str, periodicity: str) -> int:
    """'2017-11' (month; a full date '2017-11-05' also works), '2017-Q4' (quarter), '2017' (year)
    or '2017-W45' (ISO week) -> absolute period. A month label is accepted for quarters and years
    (the period containing it) and for weeks (the week of its first day); a date for any."""
    check_periodicity(periodicity)
    text = str(label).strip()
    m = re.match(r"^(\d{4})-(\d{1,2})(?:-(\d{1,2}))?$", text)
    if m:  # a month or a date: a real one (month 00 or 13 is a typing slip, never a period)
        try:
            day = datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3) or 1))
        except ValueError as exc:
            raise ConfigError(f"cannot read period {label!r}: {exc}") from exc
        if periodicity == "week":
            return days_to_period(np.asarray([(day - _EPOCH).days]), "week")[0].item()
        month = int(m.group(1)) * 12 + int(m.group(2)) - 1
        return month_to_period(np.asarray([month]), periodicity)[0].item()
    m = _LABEL[periodicity].match(text)
    if m is None:
        example = {"week": "2017-W45", "month": "2017-11", "quarter": "2017-Q4", "year": "2017"}[periodicity]
        raise ConfigError(f"cannot read period {label!r} as a {periodicity} (expected e.g. {example!r})")
    year = int(m.group(1))
    if periodicity == "week":
        try:
            monday = datetime.date.fromisocalendar(year, int(m.group(2)), 1)
        except ValueError as exc:
            raise ConfigError(f"cannot read period {label!r} as an ISO week: {exc}") from exc
        return days_to_period(np.asarray([(monday - _EPOCH).days]), "week")[0].item()
    return year * 4 + int(m.group(2)) - 1 if periodicity == "quarter" else year


def days_to_period(days: np.ndarray, periodicity: str) -> np.ndarray:
    """Days since 1970-01-01 -> absolute periods (int64): the ISO week for weeks, else through the
    month (see month_to_period)."""
    days = np.asarray(days, dtype=np.int64)
    if periodicity == "week":
        return (days + 3) // 7  # floor division: 1969-12-29, a Monday, starts week 0
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) + 1970 * 12
    return month_to_period(months, periodicity)


def month_to_period(months: np.ndarray, periodicity: str) -> np.ndarray:
    """Absolute months (year * 12 + month - 1) -> absolute periods of the given periodicity (for
    weeks: the week of the month's first day)."""
    if periodicity == "month":
        return months
    if periodicity == "week":
        first = (np.asarray(months, dtype=np.int64) - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")
        return days_to_period(first.astype(np.int64), "week")
    return months // (12 // PER_YEAR[periodicity])


def period_label(period: int, periodicity: str) -> str:
    if periodicity == "week":
        year, week, _ = (_EPOCH + datetime.timedelta(days=7 * period - 3)).isocalendar()
        return f"{year:04d}-W{week:02d}"
    if periodicity == "month":
        return f"{period // 12:04d}-{period % 12 + 1:02d}"
    if periodicity == "quarter":
        return f"{period // 4:04d}-Q{period % 4 + 1}"
    return f"{period:04d}"


@dataclass(frozen=True)
class Calendar:
    """A window of n_periods consecutive periods starting at the absolute period `start`."""

    periodicity: str
    start: int
    n_periods: int

    def __post_init__(self) -> None:
        check_periodicity(self.periodicity)
        if self.n_periods < 2:
            raise DataError(f"the period window has {self.n_periods} period(s); an index needs at least 2")
        check_window(self.start, self.start + self.n_periods - 1)

    @classmethod
    def from_bounds(cls, periodicity: str, start: str, end: str) -> Calendar:
        first, last = parse_period(start, periodicity), parse_period(end, periodicity)
        if last < first:
            raise ConfigError(f"window end {end!r} is before its start {start!r}")
        return cls(periodicity, first, last - first + 1)

    def labels(self) -> np.ndarray:
        return np.asarray([period_label(self.start + k, self.periodicity) for k in range(self.n_periods)], dtype=object)

    def first_days(self) -> np.ndarray:
        """(T,) datetime64[ns] of each period's first day (a Monday for weeks)."""
        if self.periodicity == "week":
            days = 7 * (np.arange(self.n_periods) + self.start) - 3
            return days.astype("datetime64[D]").astype("datetime64[ns]")
        months = np.arange(self.n_periods) + self.start
        if self.periodicity != "month":
            months = months * (12 // PER_YEAR[self.periodicity])
        return (np.datetime64("0000-01", "M") + months).astype("datetime64[ns]")

    def position(self, label: str) -> int:
        """Index position of a period label inside the window (ConfigError if outside)."""
        k = parse_period(label, self.periodicity) - self.start
        if not 0 <= k < self.n_periods:
            first, last = self.labels()[[0, -1]]
            raise ConfigError(f"period {label!r} is outside the data's window {first}..{last}")
        return k
