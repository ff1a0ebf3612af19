"""Frames in memory as input: any frame that speaks Arrow (pandas, polars, pyarrow, a DuckDB
relation) as a pyarrow Table, read in record batches by the same conversion as pair files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ..errors import ConfigError, DataError

FRAME = "the frame"  # how messages name the input


def arrow_table(frame: Any) -> pa.Table:
    """A pyarrow Table of `frame`: a Table or RecordBatch as it is, else through the Arrow PyCapsule
    stream (polars, DuckDB relations, pandas >= 2.2), pandas' own conversion, or `to_arrow()`;
    string and binary views (polars') as the large types every pyarrow kernel takes."""
    table = _arrow_table(frame)
    views = {pa.string_view(): pa.large_string(), pa.binary_view(): pa.large_binary()}
    if not any(f.type in views for f in table.schema):
        return table
    return table.cast(pa.schema([f.with_type(views.get(f.type, f.type)) for f in table.schema]))


def _arrow_table(frame: Any) -> pa.Table:
    try:  # object columns mixing types, duplicate names: pyarrow's reason names the column
        return _as_arrow(frame)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataError(f"cannot read the frame as Arrow columns: {str(exc).splitlines()[0]}") from exc


def _as_arrow(frame: Any) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    if hasattr(frame, "__arrow_c_stream__"):
        return pa.table(frame)
    if type(frame).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(frame, preserve_index=False)
    for method in ("to_arrow", "arrow"):  # cudf (a copy to the host), older DuckDB relations
        if callable(getattr(frame, method, None)):
            table = getattr(frame, method)()
            return table if isinstance(table, pa.Table) else pa.table(table)
    raise ConfigError(f"cannot read a {type(frame).__name__} as a frame: give a table that speaks Arrow")


def frame_batches(table: pa.Table, columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of the wanted columns, with the file readers' refusals (check_frame_columns)."""
    check_frame_columns(table.column_names, columns)
    wanted = table.select(columns)
    # batches of batch_rows rows, as the file readers': a frame's own chunks can be small (a parquet
    # file's row groups, 130k rows), and each batch is a cell table to merge
    for start in range(0, wanted.num_rows, batch_rows):
        yield from wanted.slice(start, batch_rows).combine_chunks().to_batches()


def check_frame_columns(names: list[str], columns: list[str]) -> None:
    """DataError, as the file readers', for a wanted column the frame (its column names) lacks or
    holds twice."""
    twice = [name for name, n in Counter(names).items() if n > 1 and name in columns]
    if twice:
        raise DataError(f"column {twice[0]!r} appears {names.count(twice[0])} times in {FRAME}; rename all but one")
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(
            f"column(s) {', '.join(map(repr, missing))} not found in {FRAME}; columns found: {', '.join(names)}"
        )


def frame_fingerprint(table: Any) -> dict[str, Any]:
    """The run record's entry for a frame (a pyarrow Table, or io.device.DeviceFrame): its rows and
    schema (a frame has no file to hash)."""
    return {"path": None, "frame": True, "rows": table.num_rows, "schema": str(table.schema)}
