"""The reader plan: which engine reads the input and reduces it to a cell table (and the pairs, where
a method needs them), chosen in one place from the input, the backend and what the fit needs. Each
entry is a row of the README's table "Which engine reads and reduces where"; `app.loaders` runs
the chosen one. A DuckDB reader may decline a column at run time (a timestamp with a time zone, a
type it does not convert as the pyarrow reader does: io.sql.Unsupported); the plan names the
reader that then reads, so no reader falls back on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Reader(str, Enum):
    SYNTHETIC = "synthetic"  # the embedded market, generated in batches
    DUCKDB_TABLE = "duckdb_table"  # CPU, parquet pairs: one GROUP BY query gives the table
    DUCKDB_PAIRS = "duckdb_pairs"  # CPU, parquet pairs kept: every pair in one Arrow batch
    ARROW_BATCHES = "arrow_batches"  # pyarrow batches on the host (CSV, zoned timestamps, a GPU without pylibcudf)
    FRAME_BATCHES = "frame_batches"  # a frame in memory (Python callers): its Arrow batches, converted as files' are
    DEVICE_PAIRS = "device_pairs"  # GPU with pylibcudf: libcudf reads, makes periods and the table
    DASK = "dask"  # a table per partition on the workers, summed
    DUCKDB_SALES = "duckdb_sales"  # CPU, parquet sale records: sorted by DuckDB, paired in arrays
    DEVICE_SALES = "device_sales"  # GPU with pylibcudf: sale records read and paired by libcudf
    ARRAY_SALES = "array_sales"  # sale records read by pyarrow, paired in numpy / CuPy arrays
    STORED_CELLS = "stored_cells"  # cells.parquet of earlier runs


@dataclass(frozen=True)
class ReadPlan:
    """The reader, the one that reads where it declines a column at run time (None: it never
    does), and why it was chosen (logged)."""

    reader: Reader
    fallback: Reader | None
    why: str


def plan_reading(
    kind: str, file_format: str | None, backend: str, device_reader: bool, clustered: bool, keep_pairs: bool
) -> ReadPlan:
    """The reader of an input: kind (synthetic, pairs, transactions, cells), its files' format
    (parquet, csv, "frame" for a frame in memory, "device_frame" for a cudf frame on the device;
    None for synthetic and cells), the backend's name (DuckDB's readers give host arrays, for the
    CPU), whether libcudf's reader serves it (a GPU with pylibcudf), on a Dask cluster or not, and
    whether the fit keeps the pairs (robust, lsqr/lsmr, accuracy)."""
    parquet = file_format == "parquet"
    host = backend == "cpu"
    if kind == "synthetic":
        return ReadPlan(Reader.SYNTHETIC, None, "the embedded synthetic market")
    if kind == "cells":
        return ReadPlan(Reader.STORED_CELLS, None, "stored cell tables")
    if kind == "transactions":
        if file_format == "frame":
            return ReadPlan(Reader.ARRAY_SALES, None, "sale records in a frame in memory")
        if file_format == "device_frame":  # a cudf frame, read where it is: on the device
            return ReadPlan(Reader.DEVICE_SALES, None, "sale records in a cudf frame on the GPU, paired by libcudf")
        if parquet and device_reader:
            return ReadPlan(Reader.DEVICE_SALES, None, "parquet sale records on a GPU with pylibcudf")
        if host and parquet:
            return ReadPlan(Reader.DUCKDB_SALES, Reader.ARRAY_SALES, "parquet sale records on the CPU")
        return ReadPlan(Reader.ARRAY_SALES, None, "CSV sale records, or a GPU without pylibcudf")
    if kind != "pairs":
        raise ValueError(f"no reader for data of kind {kind!r}")
    if file_format == "frame":  # already in memory: its batches converted as files' are
        return ReadPlan(Reader.FRAME_BATCHES, None, "pairs in a frame in memory")
    if file_format == "device_frame":  # a cudf frame, read where it is: on the device
        return ReadPlan(Reader.DEVICE_PAIRS, None, "pairs in a cudf frame on the GPU, read by libcudf")
    if clustered:
        return ReadPlan(Reader.DASK, None, "a Dask cluster")
    if parquet and device_reader:
        return ReadPlan(Reader.DEVICE_PAIRS, None, "parquet pairs on a GPU with pylibcudf")
    if host and parquet:
        if keep_pairs:
            return ReadPlan(Reader.DUCKDB_PAIRS, Reader.ARROW_BATCHES, "parquet pairs kept in memory on the CPU")
        return ReadPlan(Reader.DUCKDB_TABLE, Reader.ARROW_BATCHES, "parquet pairs reduced to their table on the CPU")
    return ReadPlan(Reader.ARROW_BATCHES, None, "CSV pairs, or a GPU without pylibcudf")
