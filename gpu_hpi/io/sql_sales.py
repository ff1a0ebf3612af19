"""The CPU reader of parquet sale records: DuckDB pairs the sales and reduces the pairs to the cell table.

The rules are transactions.py's (its module docstring), in its order, on the same cases
(tests/test_sql_sales.py runs both against one pandas reference):

1. a pass over the sales counts those without a date, a property key or a valid price, and finds
   the window (data.start / data.end, else the periods of the dated, keyed sales) and the group
   labels (the groups of those sales, as the array path encodes them);
2. one query keeps the last sale of a property in a period (`row_number()` over the property and
   period, by date then file row), pairs it with the property's previous kept sale (`lag`) or with
   every earlier one (a self-join, pairing=all), and either groups the pairs by (group, prev,
   recent, first failing pair filter) into cell sums, or hands the pairs over through Arrow where
   they are needed in memory (robust z, robust fits, iterative solvers, accuracy, save_pairs),
   filtered then by the array code itself (`transactions.filter_pairs`).

A kept sale carries the number of sales it replaced in its period, so the same-period duplicates are
counted in the same query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc

from ..backend.core import resolve_backend
from ..data.calendar import check_window
from ..data.cells import PRICE_SUMS, CellTable, build_cell_table
from ..data.pairs import Pairs, add_counts
from ..errors import ConfigError, DataError
from ..transactions import PairingRules, check_sales, filter_pairs
from .pairs import PairSource
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
from .sql_pairs import group_labels, grouped_table


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


def sql_sales(
    source: SaleSource,
    rules: PairingRules,
    start: int | None,
    end: int | None,
    keep_pairs: bool,
    strict: bool = False,
    prices: bool = True,
    progress: bool = False,
) -> SqlSales | None:
    """Pairs (when keep_pairs or the robust z filter needs them) and cell table of the sales of
    `source` over the window [start, end] (or the data's own); None where the pyarrow reader must
    read them: CSV, or a date column DuckDB does not handle as the array path does. prices: the
    table's price sums (the arithmetic index's) even when the pairs are not kept."""
    files, fmt = PairSource(source.path, source.format, {}).files()
    if fmt != "parquet":
        return None
    import duckdb

    con = connect(progress, source.memory_limit)
    src = relation(files, positions=True)
    where = files[0] if len(files) == 1 else source.path
    try:
        cols = _columns(con, source, src, files)
    except Unsupported:
        return None
    try:
        first, n_periods, labels, counts = _window_and_counts(con, cols, src, start, end)
        in_memory = keep_pairs or rules.max_robust_z is not None
        # the same-period duplicates: summed from each kept sale's count, or (consecutive pairs
        # grouped: one row per kept sale) the valid sales less the rows
        count_dups = in_memory or rules.pairing == "all"
        pairs = _pairs_sql(cols, src, rules, first, n_periods, grouped_filters=not in_memory, count_dups=count_dups)
        if in_memory:  # a first sale's row only where it replaced others (its dups count)
            arrow = con.sql(_pairs_query(con, pairs, labels, cols.group != "NULL")).to_arrow_table()
        else:  # plain sums, redone with each y tested where a sum is not finite (absurd prices)
            arrow = con.sql(_cells_sql(pairs, prices, careful=False, count_dups=count_dups)).to_arrow_table()
            if not np.isfinite(arrow.column("y").fill_null(0.0).to_numpy(zero_copy_only=False)).all():
                arrow = con.sql(_cells_sql(pairs, prices, careful=True, count_dups=count_dups)).to_arrow_table()
    except duckdb.Error as exc:
        raise read_error(where, exc) from exc
    grouped = cols.group != "NULL"
    sale_counts = {k: v for k, v in counts.items() if k.startswith("sale_")}
    dups = int(pc.sum(arrow.column("dups")).as_py() or 0)
    if not count_dups:
        dups = counts["valid"] - int(pc.sum(arrow.column("n")).as_py() or 0)
    sale_counts["sale_same_period_duplicate"] = dups
    if in_memory:
        pairs_kept, dropped = _from_pairs(arrow, rules, n_periods, labels, grouped)
        table = build_cell_table(pairs_kept, resolve_backend("cpu"), strict=strict)
        return SqlSales(
            first, pairs_kept, table, add_counts(sale_counts, dropped), counts["n_sales"], pairs_kept.n_pairs
        )
    table, dropped, n_pairs = _from_cells(arrow, rules, n_periods, labels, grouped, strict)
    return SqlSales(first, None, table, add_counts(sale_counts, dropped), counts["n_sales"], n_pairs)


def _columns(con: Any, source: SaleSource, src: str, files: list[str]) -> _Columns:
    names = [*source.property, source.date, source.price, *([source.group] if source.group else [])]
    if len(set(names)) != len(names):
        raise ConfigError(f"the transaction columns must be distinct, got {names}")
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
        if types[source.group] in FLOAT_TYPES:  # a NaN id is a missing group (as in sql.pair_query)
            group = f"CASE WHEN isfinite({group}) THEN {group} END"
    return _Columns(
        keys=keys,
        period=period,
        order=periods.order(source.date, types[source.date]),
        price=price,
        group=group,
        keyed=" AND ".join(present),
        priced=f"coalesce(isfinite({price}) AND {price} > 0, false)",
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


def _pairs_sql(
    cols: _Columns, src: str, rules: PairingRules, first: int, n_periods: int, grouped_filters: bool, count_dups: bool
) -> str:
    """The pairs as rows g, i, j (periods from `first`), p0, p1, y, dups (count_dups: the sales
    replaced by the later sale in its period, on one row per kept sale; else 0), reason
    (grouped_filters: the first failing pair filter, 1.. in transactions' order, else 0; NULL on a
    property's first sale, which has no pair)."""
    keys = ", ".join(cols.keys)
    # the sales' own columns are prefixed (a property key column may be called t, g or price); __r:
    # the file, then the row in it (files of up to 2^40 rows)
    sales = (
        f"SELECT {keys}, __t - {first} AS __t, __o, __r, __p, __g FROM (SELECT {keys}, "
        f"(file_index::BIGINT << 40) | file_row_number AS __r, {cols.period} AS __t, {cols.order} AS __o, "
        f"{cols.price} AS __p, {cols.group} AS __g FROM {src} WHERE {cols.keyed} AND {cols.priced}) "
        f"WHERE __t BETWEEN {first} AND {first + n_periods - 1}"
    )
    last_in_period = f"PARTITION BY {keys}, __t ORDER BY __o DESC, __r DESC"
    dups = f"count(*) OVER (PARTITION BY {keys}, __t) - 1" if count_dups else "0"
    kept = (
        f"SELECT {keys}, __t, __p, __g, {dups} AS __dups FROM ({sales}) "
        f"QUALIFY row_number() OVER ({last_in_period}) = 1"
    )
    if rules.pairing == "consecutive":
        by_time = f"PARTITION BY {keys} ORDER BY __t"
        pairs = (
            f"SELECT __g AS g, lag(__t) OVER ({by_time}) AS i, __t AS j, lag(__p) OVER ({by_time}) AS p0, "
            f"__p AS p1, __dups AS dups FROM ({kept})"
        )
    else:  # every earlier kept sale; a sale's dups on its row with the sale just before it (or alone)
        ranked = f"SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY __t) AS __k FROM ({kept})"
        on = " AND ".join(f"a.{k} = b.{k}" for k in cols.keys)
        pairs = (
            "SELECT b.__g AS g, a.__t AS i, b.__t AS j, a.__p AS p0, b.__p AS p1, "
            "CASE WHEN a.__k IS NULL OR a.__k = b.__k - 1 THEN b.__dups ELSE 0 END AS dups "
            f"FROM ({ranked}) b LEFT JOIN ({ranked}) a ON {on} AND a.__k < b.__k"
        )
    reason = "0"
    if grouped_filters:
        hold, tests = "(j - i)", []
        if rules.min_holding is not None:
            tests.append(f"{hold} < {int(rules.min_holding)}")
        if rules.max_holding is not None:
            tests.append(f"{hold} > {int(rules.max_holding)}")
        if rules.max_annual_return is not None:
            tests.append(f"abs(y) * {rules.periods_per_year} / {hold} > {float(rules.max_annual_return)!r}")
        if tests:
            reason = "CASE " + " ".join(f"WHEN {t} THEN {k}" for k, t in enumerate(tests, 1)) + " ELSE 0 END"
    y = "ln(p1 / p0)"
    return f"SELECT *, CASE WHEN i IS NOT NULL THEN {reason} END AS reason FROM (SELECT *, {y} AS y FROM ({pairs}))"


def _cells_sql(pairs: str, prices: bool, careful: bool, count_dups: bool) -> str:
    """The pairs grouped by cell and failing filter: count, replaced sales (count_dups), sums of y
    (and prices); careful: the sums over finite y only, and the others counted (bad_y). The
    first-sale rows, only counted, form one group (hashed by their own cell they cost ~10%)."""
    sums = {"y": "y", "y2": "y * y"}
    if prices:
        sums.update(p_prev="p0", p_recent="p1", p_prev2="p0 * p0", p_recent2="p1 * p1", p_cross="p0 * p1")
    only = " FILTER (WHERE isfinite(y))" if careful else ""
    aggregates = ", ".join(f"sum({v}){only} AS {k}" for k, v in sums.items())
    bad_y = "count(*) FILTER (WHERE NOT isfinite(y))" if careful else "0"
    dups = "sum(dups)" if count_dups else "0"
    paired = "CASE WHEN i IS NOT NULL THEN {} END"
    return (
        f"SELECT {paired.format('g')} AS g, i, {paired.format('j')} AS j, reason, count(*) AS n, {dups} AS dups, "
        f"{bad_y} AS bad_y, {aggregates} FROM ({pairs}) GROUP BY 1, 2, 3, 4"
    )


def _from_cells(
    arrow: Any, rules: PairingRules, n_periods: int, labels: np.ndarray, grouped: bool, strict: bool
) -> tuple[CellTable, dict[str, int], int]:
    """The cell table of the grouped pairs (sql.grouped_table applies the rules on the cell key), the
    pair filters' counts and the number of pairs they kept."""
    reason = arrow.column("reason").fill_null(-1).to_numpy(zero_copy_only=False)
    n = arrow.column("n").to_numpy()
    dropped = {name: int(n[reason == code].sum()) for code, name in enumerate(rules.bounded_filters(), 1)}
    rows = reason == 0
    cells: dict[str, Any] = {"g": arrow.column("g").combine_chunks().filter(rows)}
    cells["g_null"] = cells["g"].is_null().to_numpy(zero_copy_only=False)
    for name in ("i", "j", "n", "bad_y"):
        cells[name] = arrow.column(name).to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    for name in ("y", "y2", *PRICE_SUMS):
        if name in arrow.column_names:
            cells[name] = arrow.column(name).fill_null(0.0).to_numpy(zero_copy_only=False)[rows]
    cells["i_null"] = cells["j_null"] = np.zeros(int(rows.sum()), dtype=bool)
    cells["bad_price"] = np.zeros(int(rows.sum()), dtype=np.int64)
    reduced = grouped_table(cells, grouped, 0, n_periods - 1, strict, labels=labels)
    return reduced.table, {k: v for k, v in dropped.items() if v}, int(n[rows].sum())


def _pairs_query(con: Any, pairs: str, labels: np.ndarray, grouped: bool) -> str:
    """The pairs with numbers only, for numpy: g as codes into labels (-1: missing, through a join
    with the labels), i = -1 on a first sale's row (shipped only where it replaced others)."""
    import pyarrow as pa

    group = "-1"
    if grouped:
        con.register("group_labels", pa.table({"label": labels, "code": np.arange(len(labels), dtype=np.int32)}))
        group = "coalesce(code, -1)"
        pairs = f"SELECT * FROM ({pairs}) LEFT JOIN group_labels ON g = label"
    return (
        f"SELECT {group}::INTEGER AS g, coalesce(i, -1)::INTEGER AS i, j::INTEGER AS j, coalesce(p0, 1) AS p0, "
        f"p1, coalesce(y, 0) AS y, dups::INTEGER AS dups FROM ({pairs}) WHERE i IS NOT NULL OR dups > 0"
    )


def _from_pairs(
    arrow: Any, rules: PairingRules, n_periods: int, labels: np.ndarray, grouped: bool
) -> tuple[Pairs, dict[str, int]]:
    """The pairs (host arrays) after the pair filters, applied by the array code, and their counts."""
    columns = {name: arrow.column(name).to_numpy() for name in ("g", "i", "j", "p0", "p1", "y")}

    def only(rows: np.ndarray) -> None:
        if not rows.all():
            columns.update({name: values[rows] for name, values in columns.items()})

    only(columns["i"] >= 0)  # not a first sale's row
    group = columns["g"] if grouped else None
    ok, dropped = filter_pairs(np, columns["i"], columns["j"], columns["y"], group, rules, len(labels))
    only(ok)
    pairs = Pairs(
        columns["i"],
        columns["j"],
        columns["y"],
        columns["g"] if grouped else None,
        labels,
        n_periods,
        columns["p0"],
        columns["p1"],
    )
    return pairs, dropped
