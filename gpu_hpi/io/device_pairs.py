"""The device reader of pairs: parquet row-group sets decoded by libcudf, or a cudf frame's columns
in row ranges (io.device.DeviceFrame), converted by libcudf's operations into PairBatches (periods,
prices, group codes), for a PairSource (io/pairs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ..data.calendar import parse_period
from ..data.pairs import GroupCodes
from ..errors import DataError
from . import device, device_columns
from .columns import group_values
from .files import check_columns, decoded_row_bytes, parquet_file, plan_reads
from .frames import check_frame_columns
from .pair_batch import PairBatch


def file_batches(source: Any, files: list[str], wanted: dict[str, str], arrays: bool) -> Iterator[PairBatch]:
    """Whole row-group sets decoded on the device, as large as the device budget allows (the
    whole file where it fits): a few large reads, not one per small batch."""
    ops = device.Ops(device.library())
    for path in files:
        meta = parquet_file(path)
        check_columns(meta.schema_arrow.names, list(wanted.values()), [path])
        rows = [meta.metadata.row_group(k).num_rows for k in range(meta.num_row_groups)]
        max_rows = source.batch_rows
        if source.device_read_bytes is not None:
            max_rows = max(1, source.device_read_bytes // decoded_row_bytes(meta.schema_arrow, wanted))
        for groups in plan_reads(rows, max_rows) or [[]]:
            read = ops.read_parquet(path, list(wanted.values()), groups if groups else None)
            yield convert(source, ops, read, wanted, meta.schema_arrow, arrays)


def frame_batches(source: Any, frame: device.DeviceFrame, wanted: dict[str, str], arrays: bool) -> Iterator[PairBatch]:
    """A frame's columns on the device in row ranges (views), as large as the device budget
    allows (the whole frame where it fits), each converted as a parquet read's columns."""
    names = list(dict.fromkeys(wanted.values()))
    check_frame_columns(list(frame.columns), names)
    max_rows = source.batch_rows
    if source.device_read_bytes is not None:
        max_rows = max(1, source.device_read_bytes // decoded_row_bytes(frame.schema, wanted))
    ops = device.Ops(device.library())
    for start in range(0, frame.num_rows, max_rows):
        part = ops.slice([frame.columns[n] for n in names], start, min(start + max_rows, frame.num_rows))
        yield convert(source, ops, dict(zip(names, part, strict=True)), wanted, frame.schema, arrays)


def convert(
    source: Any,
    ops: device.Ops,
    columns: dict[str, Any],
    wanted: dict[str, str],
    schema: pa.Schema | None = None,
    arrays: bool = True,
) -> PairBatch:
    """A batch of device columns (name -> pylibcudf column, taken over: each is released once
    converted, to bound the device's peak): periods, prices and integer groups made by libcudf,
    counted from the window's start (data.start) or the batch's first period; string or nullable
    groups on the host. arrays=False keeps libcudf's columns where the groups are on the device."""
    cols = {role: columns[name] for role, name in wanted.items()}
    columns.clear()
    n_before = cols["prev"].size()
    masks = [m for m in (device_columns.missing_periods(ops, cols[r]) for r in ("prev", "recent")) if m is not None]
    if masks:
        missing = masks[0] if len(masks) == 1 else ops.either(*masks)
        kept = ops.select(list(cols.values()), ops.negate(missing))
        cols = dict(zip(cols, kept, strict=True))

    def file_type(role: str) -> pa.DataType | None:
        return schema.field(wanted[role]).type if schema is not None and wanted[role] in schema.names else None

    numbers = {}
    for role in ("y", "price_prev", "price_recent"):
        if role in cols:
            if not device_columns.numeric(file_type(role), cols[role]):
                raise DataError(
                    f"column {wanted[role]!r} of {source.path} must be numeric, got {cols[role].type().to_arrow()}"
                )
            numbers[role] = ops.nan_for_null(cols[role])
    if "y" not in numbers:
        ratio = ops.binary(numbers["price_recent"], numbers["price_prev"], "TRUE_DIV", ops.float64)
        numbers["y"] = ops.unary(ratio, "LOG")
    n_kept = cols["prev"].size()
    group: Any = None
    if "group" in cols:
        ids = cols.pop("group")
        encoded = device_columns.group_codes(ops, ids)
        group = group_values(ids.to_arrow()) if encoded is None else GroupCodes(*encoded)
    prev, recent = (
        device_columns.periods(
            ops, cols.pop(r), wanted[r], source.periodicity, source.integer_periods, source.start, file_type(r)
        )
        for r in ("prev", "recent")
    )
    extremes = [e for e in (ops.minmax(prev), ops.minmax(recent)) if e is not None]
    bounds = (min(e[0] for e in extremes), max(e[1] for e in extremes)) if extremes else None
    origin = parse_period(source.start, source.periodicity) if source.start is not None else (bounds or (0, 0))[0]
    if origin:
        prev, recent = (ops.binary(p, origin, "SUB", ops.int32) for p in (prev, recent))
    batch = PairBatch(
        prev,
        recent,
        numbers["y"],
        group,
        n_before - n_kept,
        numbers.get("price_prev"),
        numbers.get("price_recent"),
        origin=origin,
        bounds=bounds,
        ops=ops,
    )
    on_host = group is not None and not isinstance(group, GroupCodes)
    return batch.arrays() if arrays or on_host else batch
