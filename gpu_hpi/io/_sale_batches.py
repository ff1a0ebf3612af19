"""Sale records sorted by DuckDB, paired a batch of whole properties at a time (io/sql_sales.py's
helpers): the batches cut at property boundaries, each paired by data/pairing.py's rules, the
pairs and tables collected. And every sale reader's trace of a pair to its two sales
(`SaleTrace`, `trace_table`), which data.save_pairs writes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..backend.core import resolve_backend
from ..data.cells import CellTable, merge_tables
from ..data.pair_filters import PairingRules, filter_pairs
from ..data.pairing import SalePairs, pair_sorted_sales, select_pairs
from ..data.pairs import Pairs
from ..data.rules import add_counts
from ..data.tabulate import build_cell_table

# the trace's columns besides the property key's: `<date>_prev`, `<date>_recent`, then these
SOURCE_COLUMNS = ("source_file_prev", "source_row_prev", "source_file_recent", "source_row_recent")


@dataclass(frozen=True)
class SaleTrace:
    """Where the sales paired came from, aligned with them: keys, the property key's columns as
    read (name -> pyarrow array); date, the date column as read; file, (S,) indices into `files`;
    row, (S,) 0-based row numbers within the file (parquet: counted across row groups; CSV: the
    data rows after the header); types: name -> the files' type a column is cast back to where
    the reader gives another (DuckDB's microseconds for milliseconds), None to keep them."""

    keys: dict[str, Any]
    date_name: str
    date: Any
    file: np.ndarray
    row: np.ndarray
    files: list[str]
    types: dict[str, pa.DataType] | None = None

    def of_pairs(self, prev: np.ndarray, recent: np.ndarray) -> pa.Table:
        """The trace of the pairs whose sales are at positions prev and recent."""
        return trace_table(
            {name: col.take(recent) for name, col in self.keys.items()},  # a pair's sales share the key
            self.date_name,
            (self.date.take(prev), self.date.take(recent)),
            (self.file[prev], self.row[prev]),
            (self.file[recent], self.row[recent]),
            self.files,
            self.types,
        )


def trace_table(
    keys: dict[str, Any],
    date_name: str,
    dates: tuple[Any, Any],
    prev: tuple[np.ndarray, np.ndarray],
    recent: tuple[np.ndarray, np.ndarray],
    files: list[str],
    types: dict[str, pa.DataType] | None = None,
) -> pa.Table:
    """One row per pair: the property key's columns under their names, both sales' dates
    (`<date>_prev`, `<date>_recent`, the column's type) and both sales' (file, row): the file as
    the run resolved it (dictionary-encoded: 4 bytes a pair in memory, not the path), the row
    0-based within it."""
    paths = pa.array(files, pa.string())

    def typed(name: str, values: Any) -> Any:
        want = None if types is None else types.get(name)
        if want is None or values.type == want:
            return values
        try:
            return values.cast(want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # kept as the reader gave it
            return values

    # a list, not a dict: a key column may bear the name of another (save_pairs renames it)
    columns = [(name, typed(name, col)) for name, col in keys.items()]
    columns += [(f"{date_name}_prev", typed(date_name, dates[0])), (f"{date_name}_recent", typed(date_name, dates[1]))]
    for names, (file, row) in zip((SOURCE_COLUMNS[:2], SOURCE_COLUMNS[2:]), (prev, recent), strict=True):
        columns.append((names[0], pa.DictionaryArray.from_arrays(pa.array(np.asarray(file, dtype=np.int32)), paths)))
        columns.append((names[1], pa.array(np.asarray(row, dtype=np.int64))))
    return pa.Table.from_arrays([col for _, col in columns], names=[name for name, _ in columns])


def paired_batches(
    reader: Any,
    con: Any,
    n_keys: int,
    rules: PairingRules,
    labels: np.ndarray,
    n_periods: int,
    grouped: bool,
    prices: bool,
    trace: Callable[[Any], SaleTrace] | None = None,
) -> Iterator[SalePairs]:
    """Per batch of whole properties of the sorted sales: their pairs after the holding and return
    filters (the robust z filter needs every pair: `collect_pairs` applies it), with both the same-period
    duplicates and the filtered pairs counted in `dropped`; prices: the pairs keep their prices;
    trace: the batch's SaleTrace, for the pairs' trace tables."""
    bounded = replace(rules, max_robust_z=None)
    value_set = None
    for ids, batch in _whole_properties(reader, con, n_keys):
        period = batch.column(n_keys).to_numpy()
        price = batch.column(n_keys + 1).to_numpy()
        group = None
        if grouped:
            column = batch.column(n_keys + 2)
            if value_set is None:  # the labels as the column's type, for a hashed lookup
                value_set = pa.array(labels.tolist(), type=column.type)
            group = pc.index_in(column, value_set=value_set).fill_null(-1).to_numpy()
        traced = trace is not None
        made = pair_sorted_sales(np, ids, period, price, group, rules.pairing, labels, n_periods, traced)
        if not prices:
            made = replace(made, price_prev=None, price_recent=None)
        ok, filtered = filter_pairs(np, made.prev, made.recent, made.y, made.group, bounded, len(labels))
        made = select_pairs(made, ok, add_counts(made.dropped, filtered))
        if trace is not None:  # the kept pairs' sales, before the batch is let go
            table = trace(batch).of_pairs(made.sale_prev, made.sale_recent)
            made = replace(made, sale_prev=None, sale_recent=None, trace=table)
        yield made


def _whole_properties(reader: Any, con: Any, n_keys: int) -> Iterator[tuple[np.ndarray, Any]]:
    """(property ids, rows) of the sorted stream a batch at a time: ids equal exactly within a
    property (numbered from 1 in each batch); a batch's last property is held back and prepended to
    the next batch, as it may go on there. At the end of the stream the reader and the connection
    are closed, which frees DuckDB's sorted sales (4.5 GB of 100M) before the pairs are joined."""
    carry = None
    for batch in reader:
        if carry is not None:
            batch = pa.concat_batches([carry, batch])
        if batch.num_rows == 0:
            continue
        new = ~_same_key_as_previous(batch, n_keys)
        cut = int(np.flatnonzero(new)[-1])  # where the last property starts
        carry = batch.slice(cut)
        if cut:
            yield np.cumsum(new[:cut]), batch.slice(0, cut)
    reader.close()
    con.close()
    if carry is not None:
        yield np.cumsum(~_same_key_as_previous(carry, n_keys)), carry


def _same_key_as_previous(batch: Any, n_keys: int) -> np.ndarray:
    """Per row of a batch sorted by key: True where its key columns (no nulls) all equal the row
    before's; False on the first row."""
    n = batch.num_rows
    same = np.zeros(n, dtype=bool)
    if n > 1:
        equal = [pc.equal(c.slice(1), c.slice(0, n - 1)) for c in (batch.column(k) for k in range(n_keys))]
        same[1:] = functools.reduce(pc.and_, equal).to_numpy(zero_copy_only=False)
    return same


def collect_pairs(
    batches: Iterator[SalePairs],
    rules: PairingRules,
    labels: np.ndarray,
    n_periods: int,
    grouped: bool,
    keep: bool,
    strict: bool,
    fold: int,
) -> tuple[Pairs | None, CellTable, dict[str, int], int]:
    """(the pairs if kept, their cell table, drop counts of the pairs, number of pairs kept): the
    batches' pairs gathered (and filtered by robust z) where kept, else reduced `fold` pairs at
    a time into cell tables that are summed."""
    cpu = resolve_backend("cpu")
    pending: list[dict[str, Any]] = []  # the batches' pair columns, not yet joined
    tables: list[CellTable] = []
    dropped: dict[str, int] = {}
    n_pairs = n_pending = 0
    types = {"group": np.int32, "prev": np.int32, "recent": np.int32, "price_prev": float, "price_recent": float}

    def joined() -> SalePairs:
        """The pending pairs as one set of columns, each batch's parts freed column by column (the
        pairs are held once, plus one column, at the peak)."""
        traces = [p.pop("trace") for p in pending]
        columns: dict[str, Any] = {"trace": pa.concat_tables(traces) if traces and traces[0] is not None else None}
        del traces
        for name, dtype in (*types.items(), ("y", float)):
            parts = [p.pop(name) for p in pending]
            if parts and parts[0] is None:  # no groups, or prices not kept
                columns[name] = None
            else:
                columns[name] = np.concatenate(parts) if parts else np.zeros(0, dtype)
            del parts
        pending.clear()
        if not grouped:
            columns["group"] = None
        return SalePairs(**columns, group_labels=labels, n_periods=n_periods)

    def table_of(made: SalePairs) -> CellTable:
        return build_cell_table(made.as_pairs(), cpu, strict=strict)

    for made in batches:
        dropped = add_counts(dropped, made.dropped)
        pending.append({name: getattr(made, name) for name in (*types, "y", "trace")})
        n_pairs, n_pending = n_pairs + made.n_pairs, n_pending + made.n_pairs
        if not keep and n_pending >= fold:
            tables.append(table_of(joined()))
            n_pending = 0
    made = joined()
    if not keep:
        tables.append(table_of(made))
        return None, tables[0] if len(tables) == 1 else merge_tables(tables), dropped, n_pairs
    if rules.max_robust_z is not None:
        ok, filtered = filter_pairs(np, made.prev, made.recent, made.y, made.group, rules, len(labels))
        dropped = add_counts(dropped, filtered)
        made = select_pairs(made, ok, {})
    return made.as_pairs(), table_of(made), dropped, made.n_pairs
