"""Period columns -> absolute period numbers: timestamps and dates (checked to be plausible calendar
dates, by floor division, never an int32 wrap), strings ('2014-01', '2014-01-15', '2014-Q1', '2014')
and integers (positions counted from `data.start`, or YYYYMM numbers)."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data.calendar import days_to_period, month_to_period, parse_period
from ..errors import ConfigError, DataError
from .files import parquet_file

_EPOCH_MONTH = 1970 * 12  # absolute month of 1970-01


# Dates are believed between these years; outside them a column's unit is likely wrong (e.g.
# nanosecond counts stored under a millisecond unit), and no lookup table is built for them.
PLAUSIBLE_YEARS = (1800, 2200)
# dates that all fall before this day of 1970 (March 1st) are likely a coarser unit stored as a finer
# one (seconds as milliseconds: 1.7e9 s read as ms is 20 days), unless a window start is given
EARLY_1970_DAYS = 59


_PLAUSIBLE_DAYS = (
    int(np.datetime64(f"{PLAUSIBLE_YEARS[0]}-01-01", "D").astype(np.int64)),
    int(np.datetime64(f"{PLAUSIBLE_YEARS[1]}-12-31", "D").astype(np.int64)),
)


TICKS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def undated(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Where a period or date column has no value: null, or blank text (as a CSV file's empty
    field, which its reader reads as null)."""
    missing = pc.is_null(arr)
    kind = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return missing
    if pa.types.is_dictionary(arr.type):  # each distinct value tested once, looked up by the indices
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        blank_values = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr.dictionary), ""), False)
        if not pc.any(blank_values).as_py():
            return missing
        blank = pc.take(blank_values, arr.indices)
    else:
        blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
    return pc.or_(missing, pc.fill_null(blank, False))


def column_periods(
    arr: pa.Array | pa.ChunkedArray,
    name: str,
    periodicity: str,
    integer_periods: str = "index",
    start: str | None = None,
) -> np.ndarray:
    """Absolute periods (int32) of a period column without nulls."""
    kind = arr.type
    if isinstance(arr, pa.ChunkedArray) and (
        pa.types.is_dictionary(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
    ):
        arr = arr.combine_chunks()  # one dictionary for the whole batch
    if pa.types.is_dictionary(kind):
        labels = column_periods(arr.dictionary, name, periodicity, integer_periods, start)
        return labels[arr.indices.to_numpy(zero_copy_only=False)]
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            arr = pc.local_timestamp(arr)
        days = _days(arr, name, start is not None)
        if periodicity == "week":
            return days_to_period(days, "week").astype(np.int32)
        return month_to_period(_days_to_months(days), periodicity).astype(np.int32)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encoded = pc.dictionary_encode(arr)
        labels = np.asarray([parse_label(s, name, periodicity) for s in encoded.dictionary.to_pylist()], dtype=np.int32)
        return labels[encoded.indices.to_numpy(zero_copy_only=False)]
    if pa.types.is_integer(kind):
        values = arr.to_numpy(zero_copy_only=False).astype(np.int64)
        if integer_periods == "yyyymm":
            if periodicity == "week":
                raise months_as_weeks(name, str(values[0]) if values.size else "YYYYMM")
            month = values % 100
            if values.size:
                check_yyyymm(name, int(month.min()), int(month.max()))
            periods = month_to_period((values // 100) * 12 + month - 1, periodicity)
        else:
            periods = values + integer_start(name, start, periodicity)
        if periods.size:
            check_integer_periods(name, int(periods.min()), int(periods.max()))
        return periods.astype(np.int32)
    raise unsupported_period_type(name, str(kind))


def check_yyyymm(name: str, month_lo: int, month_hi: int) -> None:
    if month_lo < 1 or month_hi > 12:
        raise DataError(f"column {name!r} is not in YYYYMM form (month {month_lo}..{month_hi})")


def integer_start(name: str, start: str | None, periodicity: str) -> int:
    """The absolute period of integer position 0 (data.start); ConfigError where it is not set."""
    if start is None:
        raise ConfigError(
            f"column {name!r} holds integer period positions: set data.start (the period "
            "of position 0, e.g. data.start=2014-01), or data.integer_periods=yyyymm"
        )
    return parse_period(start, periodicity)


def check_integer_periods(name: str, lo: int, hi: int) -> None:
    if lo < 0 or hi > 100_000:
        raise DataError(
            f"column {name!r} gives periods {lo}..{hi}: not calendar periods "
            "(for YYYYMM numbers set data.integer_periods=yyyymm)"
        )


def months_as_weeks(name: str, example: str) -> DataError:
    """The refusal of a column of months under weekly periods: each month would fall in the week
    of its first day, three weeks in four left empty."""
    return DataError(
        f"column {name!r} holds months ({example!r}): weekly periods need dates (or index.periodicity=month)"
    )


def parse_label(label: str, name: str, periodicity: str) -> int:
    """A period label of a string column; DataError naming the column."""
    if periodicity == "week" and re.fullmatch(r"\s*\d{4}-\d{1,2}\s*", str(label)):
        raise months_as_weeks(name, label)
    try:
        return parse_period(label, periodicity)
    except ConfigError as exc:
        raise DataError(f"column {name!r}: {exc}") from exc


def unsupported_period_type(name: str, kind: str) -> DataError:
    return DataError(
        f"column {name!r} has type {kind}; periods must be timestamps, dates, 'YYYY-MM' or 'YYYY-Www' strings, "
        "or integers"
    )


def _days(arr: pa.Array | pa.ChunkedArray, name: str, start_given: bool = False) -> np.ndarray:
    """Days since 1970-01-01 (int32) of a timestamp or date column without nulls; DataError for
    dates outside PLAUSIBLE_YEARS, found from the column's extreme ticks before any conversion
    (the cast to date32 would wrap them silently, and the lookup table span all of int32)."""
    kind = arr.type
    per_day = TICKS_PER_DAY[kind.unit if pa.types.is_timestamp(kind) else "ms"] if not pa.types.is_date32(kind) else 1
    extremes = pc.min_max(arr.cast(pa.int32() if pa.types.is_date32(kind) else pa.int64()))
    if extremes["min"].is_valid:
        check_plausible_days(name, extremes["min"].as_py() // per_day, extremes["max"].as_py() // per_day, start_given)
    return arr.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)


def check_plausible_days(name: str, lo: int, hi: int, start_given: bool = False) -> None:
    """DataError unless the days since 1970-01-01 lo..hi of column `name` lie in PLAUSIBLE_YEARS,
    and, where no window start is given, unless they reach past the first weeks of 1970 (where
    seconds stored as milliseconds land)."""
    if not start_given and lo >= 0 and hi < EARLY_1970_DAYS:
        raise DataError(
            f"column {name!r} holds dates from {_day_label(lo)} to {_day_label(hi)} only, the first weeks of 1970: "
            "are its values in a coarser unit than its type says (e.g. seconds stored as milliseconds)? If the "
            "dates are right, give the window's start (data.start)"
        )
    if lo < _PLAUSIBLE_DAYS[0] or hi > _PLAUSIBLE_DAYS[1]:
        unit = "finer" if hi > _PLAUSIBLE_DAYS[1] else "coarser"
        example = "nanoseconds stored as milliseconds" if unit == "finer" else "seconds stored as milliseconds"
        raise DataError(
            f"column {name!r} holds dates from {_day_label(lo)} to {_day_label(hi)}, outside the years "
            f"{PLAUSIBLE_YEARS[0]}..{PLAUSIBLE_YEARS[1]}: are its values in a {unit} unit than its type "
            f"says (e.g. {example})?"
        )


def _days_to_months(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 -> absolute months, through a lookup table over the batch's day range
    (a gather is far cheaper than calendar arithmetic per element; _days bounds the range)."""
    if days.size == 0:
        return days.astype(np.int64)
    lo, hi = int(days.min()), int(days.max())
    table = np.arange(lo, hi + 1).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) + _EPOCH_MONTH
    return table[days - lo]


def footer_days(files: list[str], name: str) -> tuple[int, int] | None:
    """(first, last) day of a timestamp or date column from the parquet footers' statistics (no
    column is read), or None where they cannot tell: a row group with values but no statistics,
    a type without them (INT96 timestamps), or no value at all."""
    lo: int | None = None
    hi: int | None = None
    for path in files:
        meta = parquet_file(path)
        if name not in meta.schema_arrow.names:
            return None
        kind = meta.schema_arrow.field(name).type
        per_day = _footer_ticks_per_day(kind)
        if per_day is None:
            return None
        for k in range(meta.num_row_groups):
            group = meta.metadata.row_group(k)
            chunk = next(
                (group.column(j) for j in range(group.num_columns) if group.column(j).path_in_schema == name), None
            )
            if chunk is None:
                return None
            stats = chunk.statistics
            if chunk.num_values == 0 or (stats is not None and stats.null_count == chunk.num_values):
                continue  # an empty row group, or nulls only
            if stats is None or not stats.has_min_max or chunk.physical_type not in ("INT32", "INT64"):
                return None
            first, last = int(stats.min_raw) // per_day, int(stats.max_raw) // per_day
            lo, hi = (first, last) if lo is None or hi is None else (min(lo, first), max(hi, last))
    return None if lo is None or hi is None else (lo, hi)


def _footer_ticks_per_day(kind: pa.DataType) -> int | None:
    """Ticks a day of a date type as stored in parquet (date32: days; date64: ms), else None."""
    if pa.types.is_timestamp(kind):
        return TICKS_PER_DAY[kind.unit]
    if pa.types.is_date32(kind):
        return 1
    if pa.types.is_date64(kind):
        return TICKS_PER_DAY["ms"]
    return None


def check_footer_dates(files: list[str], names: list[str], start_given: bool = False) -> None:
    """DataError for a date column of parquet files whose statistics show implausible dates (see
    check_plausible_days), before any column is read; columns without statistics are checked by
    the readers from their values."""
    for name in names:
        days = footer_days(files, name)
        if days is not None:
            check_plausible_days(name, *days, start_given)


def _day_label(day: int) -> str:
    try:
        return str(np.datetime64(day, "D"))
    except (OverflowError, ValueError):
        return f"day {day:,} after 1970-01-01"


def order_within_period(date: pa.Array | pa.ChunkedArray, period: np.ndarray) -> np.ndarray:
    """A number ordering the sales in time finer than the period, to find a period's last sale:
    the timestamp (any unit) or the day for dates and 'YYYY-MM-DD' strings; else the period
    itself (rows then break ties)."""
    if pa.types.is_dictionary(date.type):
        date = date.cast(date.type.value_type)
    kind = date.type
    if pa.types.is_timestamp(kind):
        return date.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if pa.types.is_date(kind):
        return date.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:  # ISO dates with a day; 'YYYY-MM' labels have none
            return date.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return period.astype(np.int64)


def zoned(file_type: pa.DataType | None) -> bool:
    """True for a timestamp type with a time zone (the device reader drops the zone on reading)."""
    return file_type is not None and pa.types.is_timestamp(file_type) and file_type.tz is not None


def host_dates(arr: pa.Array | pa.ChunkedArray, file_type: pa.DataType | None) -> pa.Array | pa.ChunkedArray:
    """A date column brought to the host, a zoned timestamp with its zone again (the device
    reader gives the UTC instants; the periods are those of the zone, as the host reader's)."""
    if zoned(file_type) and pa.types.is_timestamp(arr.type):
        assert file_type is not None
        return arr.cast(pa.timestamp(arr.type.unit, tz="UTC")).cast(file_type)
    return arr
