"""Period columns -> absolute period numbers: timestamps and dates (checked to be plausible calendar
dates, by floor division, never an int32 wrap), strings ('2014-01', '2014-01-15', '2014-Q1', '2014')
and integers (positions counted from `data.start`, or YYYYMM numbers)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..backend.core import to_host
from ..data.calendar import days_to_period, month_to_period, parse_period
from ..errors import ConfigError, DataError

_EPOCH_MONTH = 1970 * 12  # absolute month of 1970-01


# Dates are believed between these years; outside them a column's unit is likely wrong (e.g.
# nanosecond counts stored under a millisecond unit), and no lookup table is built for them.
PLAUSIBLE_YEARS = (1800, 2200)


_PLAUSIBLE_DAYS = (
    int(np.datetime64(f"{PLAUSIBLE_YEARS[0]}-01-01", "D").astype(np.int64)),
    int(np.datetime64(f"{PLAUSIBLE_YEARS[1]}-12-31", "D").astype(np.int64)),
)


_TICKS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


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
        days = _days(arr, name)
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


def parse_label(label: str, name: str, periodicity: str) -> int:
    """A period label of a string column; DataError naming the column."""
    try:
        return parse_period(label, periodicity)
    except ConfigError as exc:
        raise DataError(f"column {name!r}: {exc}") from exc


def unsupported_period_type(name: str, kind: str) -> DataError:
    return DataError(
        f"column {name!r} has type {kind}; periods must be timestamps, dates, 'YYYY-MM' or 'YYYY-Www' strings, "
        "or integers"
    )


def series_months(col: Any) -> Any:
    """Absolute months (year * 12 + month - 1) of a datetime Series, computed where the Series
    lives: on the device for cudf, whose libcudf kernels are precompiled (no CuPy kernel to compile
    on a fresh machine). pandas has the same API, so the CPU tests check this very function against
    the host readers. cudf's .dt.year / .dt.month are int16: widened before the arithmetic."""
    return col.dt.year.astype("int32") * 12 + col.dt.month.astype("int32") - 1


def _days(arr: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
    """Days since 1970-01-01 (int32) of a timestamp or date column without nulls; DataError for
    dates outside PLAUSIBLE_YEARS, found from the column's extreme ticks before any conversion
    (the cast to date32 would wrap them silently, and the lookup table span all of int32)."""
    kind = arr.type
    per_day = _TICKS_PER_DAY[kind.unit if pa.types.is_timestamp(kind) else "ms"] if not pa.types.is_date32(kind) else 1
    extremes = pc.min_max(arr.cast(pa.int32() if pa.types.is_date32(kind) else pa.int64()))
    if extremes["min"].is_valid:
        check_plausible_days(name, extremes["min"].as_py() // per_day, extremes["max"].as_py() // per_day)
    return arr.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)


def check_plausible_days(name: str, lo: int, hi: int) -> None:
    """DataError unless the days since 1970-01-01 lo..hi of column `name` lie in PLAUSIBLE_YEARS."""
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


# Columns of a DataFrame library: cudf's live on the GPU (to_cupy), pandas' on the host (to_numpy);
# pandas has cudf's API for what is used here, so the CPU tests run the device readers' own code.


def frame_values(col: Any, na_value: Any = None) -> Any:
    """A cudf Series as a CuPy array, a pandas one as numpy (nulls as na_value)."""
    if hasattr(col, "to_cupy"):
        return col.to_cupy(na_value=na_value) if col.null_count else col.to_cupy()
    return col.to_numpy(na_value=na_value) if na_value is not None else col.to_numpy()


def frame_arrow(col: Any) -> pa.Array:
    """A cudf or pandas Series as an Arrow array on the host."""
    return col.to_arrow() if hasattr(col, "to_arrow") else pa.Array.from_pandas(col)


def frame_numeric(col: Any, file_type: pa.DataType | None) -> bool:
    """True for a column of numbers: by its type in the file where known (cudf's decimal dtypes have
    kind "O", like strings), else by its dtype."""
    if file_type is not None:
        return pa.types.is_integer(file_type) or pa.types.is_floating(file_type) or pa.types.is_decimal(file_type)
    return bool(col.dtype.kind in "fiu")


def _like(values: np.ndarray, col: Any) -> Any:
    """Host values moved to where the Series `col` lives."""
    if hasattr(col, "to_cupy"):
        import cupy

        return cupy.asarray(values)
    return values


def frame_periods(
    col: Any,
    name: str,
    periodicity: str,
    integer_periods: str = "index",
    start: str | None = None,
    file_type: pa.DataType | None = None,
) -> Any:
    """Absolute periods (int32) of a period column without nulls, on the column's device: timestamps
    and dates by the library's own calendar fields (checked to be plausible first, from the extreme
    ticks), other types (strings, integers) and weeks by the host conversion (column_periods).
    file_type: the column's type in the file, whose time zone cudf drops on reading (it gives
    the UTC instants): a zoned timestamp is converted on the host in its zone, as the host reader
    does."""
    dtype = col.dtype
    if _zoned(file_type):
        return _like(column_periods(_host_dates(col, file_type), name, periodicity, integer_periods, start), col)
    if isinstance(dtype, np.dtype) and dtype.kind == "M" and periodicity != "week":
        unit = np.datetime_data(dtype)[0]
        if len(col) and unit in _TICKS_PER_DAY:
            ticks = col.astype("int64")
            per_day = _TICKS_PER_DAY[unit]
            check_plausible_days(name, int(ticks.min()) // per_day, int(ticks.max()) // per_day)
        return month_to_period(frame_values(series_months(col)), periodicity).astype(np.int32, copy=False)
    return _like(column_periods(frame_arrow(col), name, periodicity, integer_periods, start), col)


def frame_order(col: Any, period: Any, file_type: pa.DataType | None = None) -> Any:
    """order_within_period of a column without nulls, on the column's device: a timestamp's ticks
    there; other types, and zoned timestamps (see frame_periods), on the host."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "M" and not _zoned(file_type):
        return frame_values(col.astype("int64"))
    return _like(order_within_period(_host_dates(col, file_type), to_host(period)), col)


def _zoned(file_type: pa.DataType | None) -> bool:
    return file_type is not None and pa.types.is_timestamp(file_type) and file_type.tz is not None


def _host_dates(col: Any, file_type: pa.DataType | None) -> pa.Array:
    """The column on the host, a zoned timestamp with its zone again (the instants are the same)."""
    arr = frame_arrow(col)
    if _zoned(file_type) and pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.timestamp(arr.type.unit, tz="UTC")).cast(file_type)
    return arr
