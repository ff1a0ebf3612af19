"""The CPU reader of parquet sale records: DuckDB reads, filters and sorts the sales; the array code
of data/pairing.py pairs them, a batch of whole properties at a time, into the cell table.

The rules are data/pairing.py's (its module docstring), in its order, on the same cases
(tests/unit/io/test_sql_sales.py runs both against one pandas reference):

1. a pass over the sales counts those without a date, a property key or a valid price, and finds
   the window (data.start / data.end, else the periods of the dated, keyed sales) and the group
   labels (the groups of those sales, as the array path encodes them);
2. one query streams the valid sales in the window sorted by (property key, period, date, file
   row): DuckDB's parallel sort (which spills past data.memory_limit) is faster than its window
   functions (`row_number()` for the last sale of a period, `lag()` for the previous one), and holds
   the sales in a third of the memory of the array path's numpy sort (BENCHMARKS.md);
3. each sorted batch, cut after its last complete property, goes to `transactions.pair_sorted_sales`
   (the last sale of a property in a period, then the pairs: the array path's own rules) and
   `transactions.filter_pairs`; the pairs become cell tables in large folds, or are kept in memory
   where a method needs them (robust z, robust fits, iterative solvers, accuracy, save_pairs).

Where the pairs are saved (SaleSource.trace), the sorted sales also carry their date as read and
their file and row (read_parquet's `file_index` and `file_row_number`: the row within its file,
across row groups), and each batch's pairs keep those of their two sales (_sale_batches.SaleTrace).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..data.calendar import check_window
from ..data.cells import CellTable
from ..data.pair_filters import PairingRules
from ..data.pairing import check_sales
from ..data.pairs import Pairs
from ..data.rules import MAX_PRICE, add_counts
from ..errors import DataError
from ._sale_batches import SaleTrace, collect_pairs, paired_batches
from ._sql_cells import group_labels
from .columns import is_nested_sql, nested_groups
from .files import input_files, parquet_file
from .sales import SaleSource
from .sql import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    PeriodColumns,
    Unsupported,
    column_types,
    connect,
    quote,
    read_error,
    relation,
)


@dataclass(frozen=True)
class SqlSales:
    """first: absolute period of period 0; table: the cell table (host arrays, its own drop counts);
    pairs: the pairs kept (host arrays) when asked for, else None; dropped: reason -> count of the
    sale rules and pair filters; n_sales: rows read; n_pairs: pairs made (after the filters)."""

    first: int
    pairs: Pairs | None
    table: CellTable
    dropped: dict[str, int]
    n_sales: int
    n_pairs: int


@dataclass(frozen=True)
class _Columns:
    """SQL expressions of one source's sales: property key columns, period, order within a period,
    price, group (or NULL), and the tests for a complete key and a valid price."""

    keys: list[str]
    period: str
    order: str
    price: str
    group: str
    keyed: str
    priced: str


# sorted sales per batch from DuckDB: enough that the per-batch calls are few, few enough that the
# temporaries are recycled by the allocator instead of page-faulted in afresh (as data.tabulate.CPU_CHUNK)
SORTED_BATCH = 1 << 20
# pairs gathered before they are reduced into a cell table, where the pairs are not kept
TABLE_FOLD = 1 << 22
# the sort's tie-breaker packs (file index, row within the file) into one BIGINT: rows below 2^40
ROW_BITS = 40


def sql_sales(
    source: SaleSource,
    rules: PairingRules,
    start: int | None,
    end: int | None,
    keep_pairs: bool,
    strict: bool = False,
    prices: bool = True,
    progress: bool = False,
) -> SqlSales:
    """Pairs (when keep_pairs or the robust z filter needs them) and cell table of the sales of
    `source` over the window [start, end] (or the data's own); Unsupported where the pyarrow reader
    must read them: CSV, or a date column DuckDB does not handle as the array path does. prices: the
    table's price sums (the arithmetic index's) even when the pairs are not kept."""
    files, fmt = input_files(source.path, source.format)
    if fmt != "parquet":
        raise Unsupported(f"{source.path} is {fmt}, not parquet")
    import duckdb

    con = connect(progress, source.memory_limit)
    src = relation(files, positions=True)
    where = files[0] if len(files) == 1 else source.path
    cols = _columns(con, source, src, files)
    in_memory = keep_pairs or rules.max_robust_z is not None
    try:
        first, n_periods, labels, counts = _window_and_counts(con, cols, src, start, end)
        sql = _sorted_sales_sql(cols, src, first, n_periods, quote(source.date) if source.trace else None)
        reader = con.sql(sql).to_arrow_reader(SORTED_BATCH)
        grouped = cols.group != "NULL"
        trace = _batch_trace(source, files) if source.trace else None
        batches = paired_batches(
            reader, con, len(cols.keys), rules, labels, n_periods, grouped, prices or in_memory, trace
        )
        paired = collect_pairs(batches, rules, labels, n_periods, grouped, in_memory, strict, TABLE_FOLD)
    except (duckdb.Error, pa.ArrowException) as exc:  # DuckDB's errors in the stream come through Arrow
        raise read_error(where, exc) from exc
    finally:  # also where a batch raised (strict): DuckDB's memory is not held by the traceback
        con.close()
    pairs, table, dropped, n_pairs = paired
    sale_counts = {k: v for k, v in counts.items() if k.startswith("sale_")}
    order = ["sale_same_period_duplicate", *rules.bounded_filters(), "return_outlier"]  # as make_pairs counts
    return SqlSales(
        first,
        pairs,
        table,
        add_counts(sale_counts, {k: dropped[k] for k in order if k in dropped}),
        counts["n_sales"],
        n_pairs,
    )


def _batch_trace(source: SaleSource, files: list[str]) -> Callable[[Any], SaleTrace]:
    """The SaleTrace of a sorted batch (_sorted_sales_sql's columns, traced): its key columns, the
    date and the packed (file, row) after the group; DuckDB's types cast back to the first file's."""
    n_keys = len(source.property)
    schema = parquet_file(files[0]).schema_arrow
    names = [*source.property, source.date]
    types = {name: schema.field(name).type for name in names if schema.get_field_index(name) >= 0}

    def trace(batch: Any) -> SaleTrace:
        packed = batch.column(n_keys + 4).to_numpy()
        return SaleTrace(
            {name: batch.column(k) for k, name in enumerate(source.property)},
            source.date,
            batch.column(n_keys + 3),
            (packed >> ROW_BITS).astype(np.int32),
            packed & ((1 << ROW_BITS) - 1),
            files,
            types,
        )

    return trace


def _columns(con: Any, source: SaleSource, src: str, files: list[str]) -> _Columns:
    names = source.columns()
    types = column_types(con, src, files)
    missing = [c for c in names if c not in types]
    if missing:
        raise DataError(
            f"column(s) {', '.join(map(repr, missing))} not found in {files[0]}; columns found: {', '.join(types)}"
        )
    price_type = types[source.price]
    if not (price_type in INTEGER_TYPES + FLOAT_TYPES or price_type.startswith("DECIMAL")):
        where = files[0] if len(files) == 1 else source.path
        raise DataError(f"column {source.price!r} of {where} must be numeric, got {price_type.lower()}")
    date = quote(source.date)
    periods = PeriodColumns(con, src, f"{date} IS NOT NULL", source.periodicity, source.integer_periods, source.start)
    period = periods.expression(source.date, types[source.date])
    keys = [quote(k) for k in source.property]
    # a key part is missing where null, or NaN (as pandas' factorize); isnan() would be folded away by
    # DuckDB from parquet statistics that leave NaN out, isfinite() and isinf() are not
    present = [_present(quote(k), types[k]) for k in source.property]
    price = f"CAST({quote(source.price)} AS DOUBLE)"
    group = "NULL"
    if source.group:
        group = quote(source.group)
        if is_nested_sql(types[source.group]):
            raise nested_groups(types[source.group].lower())
        if types[source.group] in FLOAT_TYPES:  # a NaN id is a missing group (as in sql.pair_query);
            # + 0.0 makes -0.0 the label 0.0 (the codes are looked up by their bits, numpy's labels by value)
            group = f"CASE WHEN isfinite({group}) THEN {group} + 0.0 END"
    return _Columns(
        keys=keys,
        period=period,
        order=periods.order(source.date, types[source.date]),
        price=price,
        group=group,
        keyed=" AND ".join(present),
        priced=f"coalesce(isfinite({price}) AND {price} > 0 AND {price} <= {MAX_PRICE!r}, false)",
    )


def _present(col: str, kind: str) -> str:
    """A key part's test: not null, and for floats not NaN."""
    if kind in FLOAT_TYPES:
        return f"({col} IS NOT NULL AND (isfinite({col}) OR isinf({col})))"
    return f"({col} IS NOT NULL)"


def _window_and_counts(
    con: Any, cols: _Columns, src: str, start: int | None, end: int | None
) -> tuple[int, int, np.ndarray, dict[str, int]]:
    """(first period, n_periods, group labels, sale counts: read, missing date / key, invalid price,
    outside the window) from one pass grouped by group, key and price validity and period."""
    arrow = con.sql(
        f"SELECT g, keyed, priced, t, count(*) AS n FROM (SELECT {cols.group} AS g, {cols.keyed} AS keyed, "
        f"{cols.priced} AS priced, {cols.period} AS t FROM {src}) GROUP BY ALL"
    ).to_arrow_table()
    n = arrow.column("n").to_numpy()
    t_null = arrow.column("t").is_null().to_numpy(zero_copy_only=False)
    t = arrow.column("t").fill_null(0).to_numpy().astype(np.int64)
    keyed = arrow.column("keyed").fill_null(False).to_numpy(zero_copy_only=False)
    priced = arrow.column("priced").to_numpy(zero_copy_only=False)
    usable = ~t_null & keyed  # a date and a property key: the sales the window and labels come from
    check_sales(int(n.sum()), int(n[usable].sum()))
    first = start if start is not None else int(t[usable].min())
    last = end if end is not None else int(t[usable].max())
    n_periods = max(last - first + 1, 2)
    check_window(first, first + n_periods - 1)
    outside = usable & priced & ((t < first) | (t > first + n_periods - 1))
    counts = {
        "n_sales": int(n.sum()),
        "sale_missing_date": int(n[t_null].sum()),
        "sale_missing_property": int(n[~t_null & ~keyed].sum()),
        "sale_invalid_price": int(n[usable & ~priced].sum()),
        "sale_outside_window": int(n[outside].sum()),
        "valid": int(n[usable & priced & ~outside].sum()),
    }
    group = arrow.column("g").combine_chunks()
    if cols.group == "NULL":  # one index, as Sales without groups
        labels = np.asarray(["ALL"], dtype=object)
    else:
        labels = group_labels(group.filter(usable & ~group.is_null().to_numpy(zero_copy_only=False)))
    return first, n_periods, labels, counts


def _sorted_sales_sql(cols: _Columns, src: str, first: int, n_periods: int, date: str | None = None) -> str:
    """The valid sales in the window as rows (key columns..., period from `first`, price, group;
    date: also that column as read and the packed (file, row)), sorted by key, period, order
    within the period, then file and row (files of up to 2^40 rows)."""
    keys = ", ".join(cols.keys)
    # the sales' own columns keep their names (a key column may be called t, g or price); the
    # others are prefixed
    sales = (
        f"SELECT {keys}, {cols.period} AS __t, {cols.order} AS __o, (file_index::BIGINT << {ROW_BITS}) | "
        f"file_row_number AS __r, {cols.price} AS __p, {cols.group} AS __g{'' if date is None else f', {date} AS __d'} "
        f"FROM {src} WHERE {cols.keyed} AND {cols.priced}"
    )
    traced = "" if date is None else ", __d, __r"
    return (
        f"SELECT {keys}, (__t - {first})::INTEGER AS __t, __p, __g{traced} FROM ({sales}) "
        f"WHERE __t BETWEEN {first} AND {first + n_periods - 1} ORDER BY {keys}, __t, __o, __r"
    )
