"""What a run keeps for later runs: cell tables on disk (`cells.parquet`, the reusable summary of a
set of pairs), and the pairs made from sale records (`data.save_pairs`).

One row per non-empty (group, prev, recent) cell with every per-cell sum the methods need; the
file's metadata holds a format version, the period calendar (periodicity, first period) and what
the sums mean, so that tables of different runs can be checked, aligned and added: a monthly
update reads only the new pairs and adds the stored table of the history.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..backend.core import to_host
from ..data.calendar import Calendar, parse_period, period_label
from ..data.cells import Y_SUMS, CellTable, merge_tables
from ..data.pairing import TracedPairs
from ..data.pairs import Pairs
from ..data.rules import add_counts
from ..errors import DataError, GpuHpiError
from ._sale_batches import SOURCE_COLUMNS
from .files import expand_path, write_atomically

# rows of data.save_pairs per row group (and per slice written)
SAVED_ROW_GROUP = 1 << 20
PAIRS_META = "gpu_hpi.pairs"  # a saved pairs file's metadata key: the inputs it was made from
FORMAT = "gpu_hpi.cells"  # the file format's name, not a module path: kept across layouts
VERSION = 1
# what the sums are sums of: a table made with other meanings must not be added to these
MEANING = {
    "y": "log(price_recent / price_prev)",
    "y2": "y^2",
    "p_prev": "price_prev",
    "p_recent": "price_recent",
    "p_prev2": "price_prev^2",
    "p_recent2": "price_recent^2",
    "p_cross": "price_prev * price_recent",
}


def save_cells(
    table: CellTable, calendar: Calendar, path: str | Path, inputs: list[dict[str, Any]] | None = None
) -> None:
    """Write the table (any backend) as parquet with its calendar and the fingerprints of the input
    files its pairs came from (app.record.fingerprint) in the metadata; atomic."""
    host = table.to_host()
    labels = host.group_labels
    label_type = "int" if labels.dtype.kind in "iu" or all(isinstance(v, (int, np.integer)) for v in labels) else "str"
    columns: dict[str, Any] = {
        "group": pa.array(labels[host.group].astype(str) if host.n_cells else np.zeros(0, dtype=str), pa.string()),
        "prev": pa.array(host.prev.astype(np.int32)),
        "recent": pa.array(host.recent.astype(np.int32)),
        "count": pa.array(host.count.astype(np.int64)),
    }
    columns.update({f"sum_{k}": pa.array(np.asarray(v, dtype=np.float64)) for k, v in host.sums.items()})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "periodicity": calendar.periodicity,
        "start": period_label(calendar.start, calendar.periodicity),
        "n_periods": calendar.n_periods,
        "group_label_type": label_type,
        "groups": [str(v) for v in labels],
        "sums": {k: MEANING[k] for k in host.sums},
        "dropped": host.dropped,
        "inputs": list(inputs or []),
    }
    arrow = pa.table(columns).replace_schema_metadata({"gpu_hpi": json.dumps(meta)})
    write_atomically(path, lambda tmp: pq.write_table(arrow, tmp))


def stored_inputs(path: str) -> list[dict[str, Any]]:
    """The fingerprints of the input files a stored table's pairs came from (its metadata; none for
    a table written before they were recorded)."""
    try:
        meta = json.loads((pq.read_schema(path).metadata or {}).get(b"gpu_hpi", b"{}"))
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise DataError(f"cannot read cell table {path}: {exc}") from exc
    inputs = meta.get("inputs", []) if isinstance(meta, dict) else []
    return [i for i in inputs if isinstance(i, dict) and "sha256" in i]


def derived_inputs(path: str) -> list[dict[str, Any]]:
    """The fingerprints of the files a saved pairs file (data.save_pairs) was made from, as its
    metadata keeps them; none for other files."""
    try:
        meta = json.loads((pq.read_schema(path).metadata or {}).get(PAIRS_META.encode(), b"{}"))
    except (pa.ArrowInvalid, OSError, ValueError):  # a CSV file, or one its reader refuses in its words
        return []
    inputs = meta.get("inputs", []) if isinstance(meta, dict) else []
    return [i for i in inputs if isinstance(i, dict) and "sha256" in i]


def same_input(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two fingerprints of one file's content (wherever it was read from)."""
    return bool(a.get("sha256") is not None and a.get("sha256") == b.get("sha256") and a.get("bytes") == b.get("bytes"))


def cell_files(paths: str | list[str]) -> list[str]:
    """A file, a directory (its *.parquet files), a glob, or a list of those -> files."""
    items = [paths] if isinstance(paths, str) else list(paths)
    return [f for item in items for f in expand_path(str(item), recursive=False)]


def load_cells(path: str) -> tuple[CellTable, Calendar]:
    """Read one cells.parquet (numpy arrays); DataError for anything that is not one."""
    try:
        arrow = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read cell table {path}: {exc}") from exc
    raw = (arrow.schema.metadata or {}).get(b"gpu_hpi")
    try:
        meta = json.loads(raw) if raw else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path} is not a gpu_hpi cell table (no '{FORMAT}' metadata)")
    if meta.get("version") != VERSION:
        raise DataError(f"{path} is a cell table of format version {meta.get('version')}; this gpu_hpi reads {VERSION}")
    sums = meta.get("sums", {})
    if not isinstance(sums, dict) or any(MEANING.get(k) != v for k, v in sums.items()) or not set(Y_SUMS) <= set(sums):
        raise DataError(f"{path} holds sums with other meanings than this gpu_hpi's: {sums}")
    missing = [
        c for c in ("group", "prev", "recent", "count", *(f"sum_{k}" for k in sums)) if c not in arrow.column_names
    ]
    if missing:
        raise DataError(f"{path} is a damaged cell table (no column {', '.join(map(repr, missing))})")
    try:
        calendar = Calendar(
            meta["periodicity"], parse_period(meta["start"], meta["periodicity"]), int(meta["n_periods"])
        )
        labels_text = [str(v) for v in meta["groups"]]
        if len(set(labels_text)) != len(labels_text):
            raise ValueError("repeated group labels")
        dropped = {str(k): int(v) for k, v in dict(meta.get("dropped", {})).items()}
        if any(v < 0 for v in dropped.values()):
            raise ValueError("negative drop counts")
        labels = (
            np.asarray([int(v) for v in labels_text], dtype=np.int64)
            if meta.get("group_label_type") == "int"
            else np.asarray(labels_text, dtype=object)
        )
        group_text = arrow.column("group").to_numpy(zero_copy_only=False).astype(str)
        group = pd.Index(labels_text).get_indexer(group_text).astype(np.int64)
        if (group < 0).any():
            raise ValueError("a cell's group is not among the table's groups")
        prev, recent, count = (_integers(arrow, name) for name in ("prev", "recent", "count"))
        values = {k: arrow.column(f"sum_{k}").to_numpy().astype(np.float64) for k in sums}
    except (
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        pa.ArrowInvalid,
        pd.errors.InvalidIndexError,
        GpuHpiError,
    ) as exc:
        detail = f"no {exc.args[0]!r} in its metadata" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise DataError(f"{path} is a damaged cell table ({detail})") from exc
    t = calendar.n_periods
    if count.size and not ((prev >= 0).all() and (prev < recent).all() and (recent < t).all() and (count > 0).all()):
        raise DataError(f"{path} is a damaged cell table (cells outside its {t} periods or empty)")
    if not all(np.isfinite(v).all() for v in values.values()):
        raise DataError(f"{path} is a damaged cell table (a sum that is not a finite number)")
    # n * sum(y^2) >= sum(y)^2 for any numbers (Cauchy-Schwarz): a cell below it was altered
    spread = count * values["y2"] - values["y"] ** 2
    if (spread < -1e-9 * (count * np.abs(values["y2"]) + values["y"] ** 2 + 1.0)).any():
        raise DataError(f"{path} is a damaged cell table (a cell's sum of y^2 below its sum of y squared over n)")
    key = (group * t + prev) * t + recent
    order = np.argsort(key, kind="stable")
    if (np.diff(key[order]) == 0).any():  # a table holds each (group, prev, recent) once
        raise DataError(f"{path} is a damaged cell table (a cell appears twice)")
    table = CellTable(
        t,
        labels,
        group[order],
        prev[order],
        recent[order],
        count[order],
        {k: v[order] for k, v in values.items()},
        dropped,
    )
    return table, calendar


def combine_tables(tables: list[tuple[CellTable, Calendar]]) -> tuple[CellTable, Calendar]:
    """Align the tables' calendars (same periodicity; windows may differ) and add them up
    (price sums are kept when every table has them)."""
    periodicity = {cal.periodicity for _, cal in tables}
    if len(periodicity) != 1:
        raise DataError(f"cannot add cell tables of different periodicities: {sorted(periodicity)}")
    if len({_label_kind(tb.group_labels) for tb, _ in tables}) > 1:
        raise DataError("cannot add cell tables whose group ids are integers in some and text in others")
    first = min(cal.start for _, cal in tables)
    last = max(cal.start + cal.n_periods - 1 for _, cal in tables)
    n = last - first + 1
    aligned = [tb.shift(cal.start - first, n) for tb, cal in tables]
    return merge_tables(aligned), Calendar(periodicity.pop(), first, n)


def window_cells(
    table: CellTable, calendar: Calendar, start: int | None, end: int | None
) -> tuple[CellTable, Calendar]:
    """The table's cells inside the window [start, end] of absolute periods (None: open at that
    end), on a calendar inside that window; the pairs of the cells outside are counted as
    period_out_of_range, as a reader counts pairs outside data.start / data.end."""
    lo, hi = calendar.start, calendar.start + calendar.n_periods - 1
    keep = np.ones(table.n_cells, dtype=bool)
    if start is not None:
        keep &= lo + table.prev >= start
    if end is not None:
        keep &= lo + table.recent <= end
    # the calendar: the table's, cut to the window, of two periods at least and never outside the
    # window (a table wholly outside it, left empty, would otherwise stretch the merged calendar)
    first, last = max(lo, start) if start is not None else lo, min(hi, end) if end is not None else hi
    if end is not None:
        first = min(first, end - 1)
    last = max(last, first + 1)
    outside = int(table.count[~keep].sum())
    kept, offset = table.select(keep), lo - first
    dropped = add_counts(table.dropped, {"period_out_of_range": outside})
    moved = replace(kept, prev=kept.prev + offset, recent=kept.recent + offset, n_periods=last - first + 1)
    return replace(moved, dropped=dropped), Calendar(calendar.periodicity, first, last - first + 1)


def _label_kind(labels: np.ndarray) -> str:
    return "int" if labels.dtype.kind in "iu" else "str"


def save_pairs(
    pairs: Pairs, calendar: Calendar, path: str | os.PathLike[str], lineage: list[dict[str, Any]] | None = None
) -> None:
    """Write the pairs as parquet in the seed's schema (group_id, PrevYearMonth, RecentYearMonth,
    LogPriceDiff) plus PrevPrice and RecentPrice; periods as their first day (the run writes them
    to a temporary name and renames them with its other outputs). Pairs made from sale records
    (TracedPairs) also keep their trace: the property key's columns, both sales' dates as read
    and their source files and 0-based rows (a key column named as one of the pair columns gets the
    prefix `property_`). Pairs on the GPU are copied to the host first. lineage: the fingerprints
    of the files the pairs were made from, kept in the file's metadata (derived_inputs), so that a
    table of those files does not count the pairs again."""
    firsts = calendar.first_days()
    group: Any = "ALL"
    if pairs.group is not None:  # a pair whose later sale has no group keeps a missing group
        codes = to_host(pairs.group)
        group = pd.Series(pairs.group_labels[np.maximum(codes, 0)], dtype=object).where(codes >= 0, None)
    frame = pd.DataFrame(
        {
            "group_id": group,
            "PrevYearMonth": firsts[to_host(pairs.prev)],
            "RecentYearMonth": firsts[to_host(pairs.recent)],
            "LogPriceDiff": to_host(pairs.y),
            "PrevPrice": to_host(pairs.price_prev),
            "RecentPrice": to_host(pairs.price_recent),
        }
    )
    trace = pairs.trace if isinstance(pairs, TracedPairs) else None
    table = pa.Table.from_pandas(frame, preserve_index=False)
    own = {PAIRS_META: json.dumps({"inputs": lineage or []})}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **own})
    if trace is None:
        pq.write_table(table, path)
        return
    n_keys = trace.num_columns - 2 - len(SOURCE_COLUMNS)  # the key's columns, then the dates and sources
    taken = {*table.column_names, *trace.column_names[n_keys:]}
    for k, (name, column) in enumerate(zip(trace.column_names, trace.columns, strict=True)):
        while k < n_keys and name in taken:  # a key column called e.g. group_id
            name = f"property_{name}"
        taken.add(name)
        table = table.append_column(name, column)
    # the source files are held dictionary-encoded; written as plain text a slice at a time, so the
    # paths are never all spelt out in memory
    schema = pa.schema(
        [f.with_type(pa.string()) if f.name in SOURCE_COLUMNS[::2] else f for f in table.schema],
        metadata=table.schema.metadata,
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, max(table.num_rows, 1), SAVED_ROW_GROUP):
            writer.write_table(table.slice(start, SAVED_ROW_GROUP).cast(schema))


def _integers(arrow: pa.Table, name: str) -> np.ndarray:
    """An integer column as int64 (a float one was truncated: 2.5 pairs read as 2)."""
    column = arrow.column(name)
    if not pa.types.is_integer(column.type):
        raise ValueError(f"column {name!r} holds {column.type} values, not integers")
    return column.to_numpy().astype(np.int64)
