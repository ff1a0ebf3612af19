"""Readers: repeat-sales pairs from parquet (a file, a directory or a glob of parts) or CSV, streamed
in batches, with period columns turned into absolute period numbers cheaply.

Periods may be timestamps/dates, strings ('2014-01', '2014-01-15', '2014-Q1', '2014') or integers
(positions counted from `data.start`, or YYYYMM numbers).
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .data.calendar import check_window, days_to_period, month_to_period, parse_period
from .data.cells import CellTable, build_cell_table
from .data.pairs import encode_groups, prepare_pairs
from .errors import ConfigError, DataError
from .transactions import Sales

_EPOCH_MONTH = 1970 * 12  # absolute month of 1970-01


@dataclass(frozen=True)
class PairBatch:
    """One batch of pairs: prev, recent: (n,) int32 absolute periods; y: (n,) float64 (NaN where
    null); group: (n,) group ids (numpy, pandas, or CuPy from cudf) or None; price_prev,
    price_recent: (n,) float64 prices or None. missing_period: rows dropped for a null period."""

    prev: Any
    recent: Any
    y: Any
    group: Any
    missing_period: int
    price_prev: Any = None
    price_recent: Any = None

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    def cell_table(
        self, start: int | None, end: int | None, backend: Any, strict: bool = False, threads: int | None = None
    ) -> tuple[int, CellTable]:
        """(absolute first period, cell table) of this non-empty batch over its own period range,
        or over the window [start, end] where given (pairs outside it are dropped and counted)."""
        lo = start if start is not None else int(min(self.prev.min(), self.recent.min()))
        if start is None and end is not None:
            lo = min(lo, end - 1)  # a batch starting after the end: all of it out of the window
        hi = end if end is not None else max(int(max(self.prev.max(), self.recent.max())), lo + 1)
        check_window(lo, hi)
        pairs = prepare_pairs(
            self.prev - np.int32(lo),
            self.recent - np.int32(lo),
            self.y,
            self.group,
            n_periods=max(hi - lo + 1, 2),
            backend=backend,
            price_prev=self.price_prev,
            price_recent=self.price_recent,
        )
        return lo, build_cell_table(pairs, backend, strict=strict, threads=threads)


@dataclass(frozen=True)
class PairSource:
    """Where and how to read pairs. columns: role (group/prev/recent/y) -> column name."""

    path: str
    format: str
    columns: dict[str, str | None]  # roles: group, prev, recent, y, price_prev, price_recent
    periodicity: str = "month"
    integer_periods: str = "index"
    start: str | None = None
    batch_rows: int = 1 << 22
    # GPU reads: bytes of decoded columns per read (backend.device_read_budget); None: batch_rows
    device_read_bytes: int | None = None
    memory_limit: str | None = None  # of DuckDB's reads on the CPU (sql.connect); None: its default

    def files(self) -> tuple[list[str], str]:
        """The files to read and their format (parquet or csv); DataError if there are none."""
        files = expand_path(self.path)
        fmt = self.format
        if fmt == "auto":
            exts = {os.path.splitext(f)[1].lower() for f in files}
            if exts <= {".parquet", ".pq"}:
                fmt = "parquet"
            elif exts <= {".csv", ".txt", ".gz"}:
                fmt = "csv"
            else:
                raise DataError(
                    f"cannot tell the format of {self.path} from its extension; set data.format=parquet|csv"
                )
        if fmt == "csv" and len(files) != 1:
            raise DataError(f"CSV input must be a single file, {self.path} matches {len(files)}")
        return files, fmt

    def count_rows(self) -> int | None:
        """Rows in the input when the format tells it cheaply (parquet metadata), else None."""
        files, fmt = self.files()
        if fmt != "parquet":
            return None
        return sum(parquet_file(path).metadata.num_rows for path in files)

    def wanted(self) -> dict[str, str]:
        wanted = {role: name for role, name in self.columns.items() if name}
        if ("price_prev" in wanted) != ("price_recent" in wanted):
            raise ConfigError("set both data.columns.price_prev and data.columns.price_recent, or neither")
        if "y" not in wanted and "price_prev" not in wanted:
            raise ConfigError("data.columns.y is null: give the price columns to compute it from")
        return wanted

    def batches(self, gpu: bool = False) -> Iterator[PairBatch]:
        """Stream the pairs in batches of about `batch_rows` rows (host arrays; with `gpu=True` and
        cudf importable, parquet is decoded on the GPU and the batches hold CuPy arrays)."""
        for job in self.batch_jobs(gpu):
            yield job()

    def batch_jobs(self, gpu: bool = False) -> Iterator[Callable[[], PairBatch]]:
        """Like `batches`, but each item is a call that converts the batch, so that callers can run
        the conversions of several batches in parallel while the reader decodes the next ones."""
        files, fmt = self.files()
        wanted = self.wanted()
        if self.reads_on_device(gpu):
            for batch in self._cudf_batches(files, wanted):
                yield functools.partial(ready, batch)
            return
        for record_batch in _record_batches(files, fmt, list(wanted.values()), self.batch_rows):
            yield functools.partial(self.convert, record_batch, wanted)

    def reads_on_device(self, gpu: bool) -> bool:
        """True where the batches are decoded on the GPU by cudf (parquet, cudf importable)."""
        return gpu and self.files()[1] == "parquet" and cudf_module() is not None

    def _cudf_batches(self, files: list[str], wanted: dict[str, str]) -> Iterator[PairBatch]:
        """cudf.read_parquet of whole row-group sets, as large as the device budget allows (the
        whole file where it fits): a few large reads, not one per small batch. Periods from the
        device's columns."""
        cudf = cudf_module()
        for path in files:
            meta = parquet_file(path)
            _check_columns(meta.schema_arrow.names, list(wanted.values()), [path])
            rows = [meta.metadata.row_group(k).num_rows for k in range(meta.num_row_groups)]
            max_rows = self.batch_rows
            if self.device_read_bytes is not None:
                max_rows = max(1, self.device_read_bytes // decoded_row_bytes(meta.schema_arrow, wanted))
            for groups in plan_reads(rows, max_rows) or [[]]:
                try:
                    frame = cudf.read_parquet(
                        path, columns=list(wanted.values()), row_groups=[groups] if groups else None
                    )
                except Exception as exc:  # cudf raises RuntimeError / OSError / ValueError variants
                    raise DataError(f"cannot read {path}: {exc}") from exc
                yield self.convert_device(frame, wanted)

    def convert_device(self, frame: Any, wanted: dict[str, str]) -> PairBatch:
        n_before = len(frame)
        if frame[wanted["prev"]].null_count or frame[wanted["recent"]].null_count:  # else no copy
            frame = frame.dropna(subset=[wanted["prev"], wanted["recent"]])
        numbers = {}
        for role in ("y", "price_prev", "price_recent"):
            if role in wanted:
                col = frame[wanted[role]]
                if col.dtype.kind not in "fiu":
                    raise DataError(f"column {wanted[role]!r} of {self.path} must be numeric, got {col.dtype}")
                if col.dtype != np.float64:
                    col = col.astype("float64")
                numbers[role] = col.to_cupy(na_value=float("nan")) if col.null_count else col.to_cupy()
        if "y" not in numbers:
            import cupy

            numbers["y"] = cupy.log(numbers["price_recent"] / numbers["price_prev"])
        group = None
        if "group" in wanted:
            col = frame[wanted["group"]]
            group = col.to_cupy() if col.dtype.kind in "iu" and col.null_count == 0 else group_values(col.to_arrow())
        prev = self._device_periods(frame[wanted["prev"]], wanted["prev"])
        recent = self._device_periods(frame[wanted["recent"]], wanted["recent"])
        return PairBatch(
            prev,
            recent,
            numbers["y"],
            group,
            n_before - len(frame),
            numbers.get("price_prev"),
            numbers.get("price_recent"),
        )

    def _device_periods(self, col: Any, name: str) -> Any:
        import cupy

        if col.dtype.kind == "M" and self.periodicity != "week":  # weeks: the host conversion below
            return month_to_period(series_months(col).to_cupy(), self.periodicity).astype(np.int32, copy=False)
        return cupy.asarray(self.periods(col.to_arrow(), name))  # other types: the host conversion

    def convert(self, batch: pa.Table | pa.RecordBatch, wanted: dict[str, str]) -> PairBatch:
        cols = {role: batch.column(name) for role, name in wanted.items()}
        missing = pc.or_(pc.is_null(cols["prev"]), pc.is_null(cols["recent"]))
        n_missing = int(pc.sum(missing).as_py() or 0)
        if n_missing:  # rare: filter the batch once rather than carry sentinels
            keep = pc.invert(missing)
            cols = {role: pc.filter(col, keep) for role, col in cols.items()}
        numbers = {
            role: _floats(cols[role], wanted[role], self.path)
            for role in ("y", "price_prev", "price_recent")
            if role in cols
        }
        if "y" not in numbers:
            with np.errstate(divide="ignore", invalid="ignore"):
                numbers["y"] = np.log(numbers["price_recent"] / numbers["price_prev"])
        prev = self.periods(cols["prev"], wanted["prev"])
        recent = self.periods(cols["recent"], wanted["recent"])
        group = group_values(cols["group"]) if "group" in cols else None
        return PairBatch(
            prev, recent, numbers["y"], group, n_missing, numbers.get("price_prev"), numbers.get("price_recent")
        )

    def periods(self, arr: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
        """Absolute periods (int32) of a period column without nulls."""
        return column_periods(arr, name, self.periodicity, self.integer_periods, self.start)


@dataclass(frozen=True)
class RawSales:
    """Sale records read on the host: key: (S,) int64 codes of the (composite) property key;
    period: (S,) int32 absolute periods; order: (S,) int64 days (or periods) to order sales within a
    period; price: (S,) float64 (NaN where null); group: ids or None. Sales with a missing date or
    property key are already dropped and counted (n_missing_date, dropped)."""

    key: np.ndarray
    period: np.ndarray
    order: np.ndarray
    price: np.ndarray
    group: Any
    n_missing_date: int
    dropped: dict[str, int]

    @property
    def n_sales(self) -> int:
        return int(self.price.shape[0]) + self.n_missing_date + sum(self.dropped.values())

    def to_sales(self, backend: Any, first: int, n_periods: int) -> Sales:
        """Sales on the backend, periods as positions from the absolute period `first`."""
        xp = backend.xp
        if self.group is None:
            codes, labels = None, np.asarray(["ALL"], dtype=object)
        else:
            codes, labels = encode_groups(backend, self.group)
        return Sales(
            xp.asarray(self.key),
            xp.asarray(self.period.astype(np.int64) - first),
            xp.asarray(self.order),
            xp.asarray(self.price),
            codes,
            labels,
            n_periods,
        )


@dataclass(frozen=True)
class SaleSource:
    """Where and how to read sale records: property is one column name or several (a composite key)."""

    path: str
    format: str
    property: list[str]
    date: str
    price: str
    group: str | None = None
    periodicity: str = "month"
    integer_periods: str = "index"
    start: str | None = None
    batch_rows: int = 1 << 21
    memory_limit: str | None = None  # of DuckDB's pairing on the CPU (sql.connect); None: its default

    def read(self) -> RawSales:
        """Every sale (pairing needs all sales of a property together), read batch by batch."""
        files, fmt = PairSource(self.path, self.format, {}).files()
        names = [*self.property, self.date, self.price, *([self.group] if self.group else [])]
        if len(set(names)) != len(names):
            raise ConfigError(f"the transaction columns must be distinct, got {names}")
        keys: list[list[pa.ChunkedArray | pa.Array]] = [[] for _ in self.property]
        periods, orders, prices, groups = [], [], [], []
        missing_date = 0
        for batch in _record_batches(files, fmt, names, self.batch_rows):
            date = batch.column(self.date)
            null = pc.is_null(date)
            n_null = int(pc.sum(null).as_py() or 0)
            if n_null:
                keep = pc.invert(null)
                batch = batch.filter(keep)
                date = batch.column(self.date)
                missing_date += n_null
            periods.append(column_periods(date, self.date, self.periodicity, self.integer_periods, self.start))
            orders.append(_order_within_period(date, periods[-1]))
            prices.append(_floats(batch.column(self.price), self.price, self.path))
            if self.group:
                groups.append(group_values(batch.column(self.group)))
            for k, name in enumerate(self.property):
                keys[k].append(batch.column(name))
        prop = _composite_codes([_chunks(parts) for parts in keys])
        period = np.concatenate(periods) if periods else np.zeros(0, np.int32)
        order = np.concatenate(orders) if orders else np.zeros(0, np.int64)
        price = np.concatenate(prices) if prices else np.zeros(0)
        group = _concat_groups(groups) if self.group else None
        missing_key = prop < 0
        dropped = {}
        if missing_key.any():
            dropped["sale_missing_property"] = int(missing_key.sum())
            ok = ~missing_key
            prop, period, order, price = prop[ok], period[ok], order[ok], price[ok]
            group = (
                None
                if group is None
                else (group[ok] if isinstance(group, np.ndarray) else group[ok].reset_index(drop=True))
            )
        return RawSales(prop, period, order, price, group, missing_date, dropped)


def _chunks(parts: list[Any]) -> pa.ChunkedArray:
    chunks: list[pa.Array] = []
    for part in parts:
        chunks.extend(part.chunks if isinstance(part, pa.ChunkedArray) else [part])
    return pa.chunked_array(chunks) if chunks else pa.chunked_array([], type=pa.int64())


def _order_within_period(date: pa.Array | pa.ChunkedArray, period: np.ndarray) -> np.ndarray:
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


def _composite_codes(columns: list[pa.ChunkedArray]) -> np.ndarray:
    """One int64 code per distinct combination of the key columns (-1 where any part is null)."""
    codes: np.ndarray | None = None
    for col in columns:
        if pa.types.is_integer(col.type) and col.null_count == 0:
            part, uniques = pd.factorize(col.to_numpy())
        elif pa.types.is_integer(col.type):  # nullable integers stay exact (not float64)
            part, uniques = pd.factorize(col.to_pandas(types_mapper=lambda _: pd.Int64Dtype()), use_na_sentinel=True)
        else:
            part, uniques = pd.factorize(col.to_pandas(), use_na_sentinel=True)
        part = part.astype(np.int64)
        if codes is None:
            codes = part
            continue
        width = max(len(uniques), 1)
        missing = (codes < 0) | (part < 0)
        if int(codes.max(initial=0)) + 1 > (2**62) // width:  # keep the combined code in int64
            codes, _ = pd.factorize(codes)
        codes = np.where(missing, -1, codes * width + part)
    assert codes is not None
    return codes


def _concat_groups(groups: list[Any]) -> Any:
    if all(isinstance(g, np.ndarray) for g in groups):
        return np.concatenate(groups)
    return pd.concat([pd.Series(g) for g in groups], ignore_index=True)


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


# The rules for period columns, shared by this reader and the DuckDB one (sql.py).


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


def plan_reads(rows: list[int], max_rows: int) -> list[list[int]]:
    """Consecutive row groups (given their row counts) in sets of at most max_rows rows; a row
    group larger than that is a set of its own."""
    plan: list[list[int]] = []
    current: list[int] = []
    total = 0
    for k, n in enumerate(rows):
        if current and total + n > max_rows:
            plan.append(current)
            current, total = [], 0
        current.append(k)
        total += n
    if current:
        plan.append(current)
    return plan


# device bytes a decoded row takes beyond its columns: int32 periods twice, int32 group codes
DERIVED_ROW_BYTES = 12


def decoded_row_bytes(schema: pa.Schema, wanted: dict[str, str]) -> int:
    """Device bytes one row of the wanted columns takes decoded, plus what is derived from it;
    fixed-width types by their width, others (strings) counted as 32 bytes."""
    width = 0
    for name in wanted.values():
        kind = schema.field(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        width += kind.bit_width // 8 if numeric or pa.types.is_temporal(kind) else 32
    return width + DERIVED_ROW_BYTES


def ready(batch: PairBatch) -> PairBatch:
    """A batch job for a batch already converted."""
    return batch


def cudf_module() -> Any:
    """The cudf module, or None where it cannot be imported or GPU_HPI_CUDF=0 asks for the pyarrow
    reader (decoding on the host) on a GPU."""
    if os.environ.get("GPU_HPI_CUDF", "1") == "0":
        return None
    try:
        import cudf
    except Exception:  # ImportError, or a CUDA runtime problem raised at import
        return None
    return cudf


# Dates are believed between these years; outside them a column's unit is likely wrong (e.g.
# nanosecond counts stored under a millisecond unit), and no lookup table is built for them.
PLAUSIBLE_YEARS = (1800, 2200)
_PLAUSIBLE_DAYS = (
    int(np.datetime64(f"{PLAUSIBLE_YEARS[0]}-01-01", "D").astype(np.int64)),
    int(np.datetime64(f"{PLAUSIBLE_YEARS[1]}-12-31", "D").astype(np.int64)),
)
_TICKS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


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


def _floats(arr: pa.Array, name: str, where: str) -> np.ndarray:
    """A numeric column as float64 (NaN where null); DataError naming the input for other types."""
    if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type)):
        raise DataError(f"column {name!r} of {where} must be numeric, got {arr.type}")
    return arr.cast(pa.float64()).to_numpy(zero_copy_only=False)


def group_values(arr: pa.Array) -> Any:
    """Group ids: numpy integers, else a pandas Series (strings, categories; nulls become missing)."""
    if pa.types.is_integer(arr.type):
        # nullable integers stay integers (plain to_pandas would turn them into floats)
        return arr.to_numpy() if arr.null_count == 0 else arr.to_pandas(types_mapper=lambda _: pd.Int64Dtype())
    return arr.to_pandas()


def write_atomically(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """write(tmp) into a temporary name beside `path`, then rename: readers never see a partial file."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def expand_path(path: str, recursive: bool = True) -> list[str]:
    """A file, a directory (its .parquet files, in subfolders too if recursive) or a glob -> the
    files, sorted; DataError when there are none."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        pattern = os.path.join(path, "**", "*.parquet") if recursive else os.path.join(path, "*.parquet")
        files = sorted(glob.glob(pattern, recursive=recursive))
        if not files:
            raise DataError(f"no .parquet files in directory {path}")
        return files
    if any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
        if not files:
            raise DataError(f"no files match {path}")
        return files
    if os.path.isfile(path):
        return [path]
    raise DataError(f"no such file: {path}")


def parquet_file(path: str) -> pq.ParquetFile:
    """A parquet file's reader (metadata read); DataError naming the file if it is not parquet."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _parquet_batches(files: list[str], columns: list[str], batch_rows: int) -> Iterator[pa.Table | pa.RecordBatch]:
    """Whole row groups, gathered up to ~batch_rows rows per read (pyarrow decodes their columns in
    parallel, and nothing is read ahead beyond one batch: host memory stays bounded); row groups
    much larger than a batch are streamed in slices."""
    for path in files:
        f = parquet_file(path)
        _check_columns(f.schema_arrow.names, columns, [path])
        pending: list[int] = []
        rows = 0
        try:
            for k in range(f.num_row_groups):
                n_k = f.metadata.row_group(k).num_rows
                if n_k > 2 * batch_rows:
                    if pending:
                        yield f.read_row_groups(pending, columns=columns)
                        pending, rows = [], 0
                    yield from f.iter_batches(batch_size=batch_rows, row_groups=[k], columns=columns)
                    continue
                pending.append(k)
                rows += n_k
                if rows >= batch_rows:
                    yield f.read_row_groups(pending, columns=columns)
                    pending, rows = [], 0
            if pending:
                yield f.read_row_groups(pending, columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from exc


def _record_batches(
    files: list[str], fmt: str, columns: list[str], batch_rows: int
) -> Iterator[pa.Table | pa.RecordBatch]:
    """Batches (tables or record batches) of the wanted columns; DataError naming the file for
    unreadable input."""
    if fmt == "parquet":
        yield from _parquet_batches(files, columns, batch_rows)
        return
    try:
        reader = pacsv.open_csv(
            files[0],
            read_options=pacsv.ReadOptions(block_size=1 << 26),
            # empty fields are nulls (a missing date or price), not '' or a parse error
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read CSV file {files[0]}: {exc}") from exc
    _check_columns(reader.schema.names, columns, files)
    try:
        for batch in reader:
            yield batch.select(columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read CSV file {files[0]}: {exc}") from exc


def _check_columns(found: list[str], wanted: list[str], files: list[str]) -> None:
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DataError(
            f"column(s) {', '.join(map(repr, missing))} not found in {files[0]}; columns found: {', '.join(found)}"
        )
