"""The CPU reader of parquet pairs: DuckDB reads them and reduces them to the cell table.

DuckDB's parallel parquet reader never materialises the columns and its hash aggregation streams,
so one `GROUP BY` over (group, prev, recent) gives the cell table at the speed of the file's
decoding, in bounded memory. The drop rules are those of `pairs.invalid_masks`, in their order,
with the readers' `missing_period` first: the rules on the cell key (missing period or group,
outside the window, prev >= recent) are applied to the grouped rows, the rules on each pair
(invalid price, non-finite y) are counted in the query; tests/unit/io/test_sql_pairs.py runs this reader
and the streaming pyarrow reader on the same files. Periods: timestamps and dates by calendar arithmetic,
integers from `data.start` or as YYYYMM, strings through their distinct values parsed once in
Python. CSV stays with pyarrow (its null tokens and type inference are the documented rules).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.rules import MAX_ABS_Y, VALUE_RULES, sql_condition
from ..errors import DataError
from ._sql_cells import grouped_table
from .columns import group_values, is_nested_sql, nested_groups
from .pair_batch import PairBatch
from .sql import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    PeriodColumns,
    SqlTable,
    Unsupported,
    column_types,
    connect,
    quote,
    read_error,
    relation,
)

log = logging.getLogger("gpu_hpi")


@dataclass(frozen=True)
class PairQuery:
    """A connection and the SQL selecting the pairs of a source as g, i, j (absolute periods), y,
    p0, p1 (prices, or NULL); grouped / prices: whether the source has those columns; where: the
    input, for error messages."""

    con: Any
    pairs: str
    grouped: bool
    prices: bool
    where: str
    order: str = ""  # ORDER BY restoring the files' row order where the query joins (string periods)


def pair_query(source: Any, progress: bool = False, rows: tuple[int, int] | None = None) -> PairQuery:
    """The query of the pairs of `source` (a PairSource, parquet); Unsupported where the pyarrow
    reader must read them: a timestamp with a time zone (its wall-clock months depend on the zone
    pyarrow keeps), a column DuckDB does not convert as pyarrow does. progress: DuckDB's progress
    bar, on a terminal. rows: [first, stop) rows of a single file (a Dask partition: DuckDB reads
    only the row groups they fall in)."""
    files, fmt = source.files()
    if fmt != "parquet":  # CSV: pyarrow's parser (its null tokens and type inference) stays the one rule
        raise Unsupported(f"{source.path} is {fmt}, not parquet")
    wanted = source.wanted()
    con = connect(progress, source.memory_limit)
    src, in_rows = relation(files), ""
    if rows is not None:
        if len(files) != 1:
            raise ValueError("a row range reads one file")
        in_rows = f" WHERE file_row_number >= {int(rows[0])} AND file_row_number < {int(rows[1])}"
        src = f"(SELECT * FROM {relation(files, positions=True)}{in_rows})"
    types = column_types(con, src, files)
    missing = [c for c in wanted.values() if c not in types]
    if missing:
        raise DataError(
            f"column(s) {', '.join(map(repr, missing))} not found in {files[0]}; columns found: {', '.join(types)}"
        )
    for role in ("y", "price_prev", "price_recent"):
        if role in wanted and not (
            types[wanted[role]] in INTEGER_TYPES + FLOAT_TYPES or types[wanted[role]].startswith("DECIMAL")
        ):
            where = files[0] if len(files) == 1 else source.path
            raise DataError(f"column {wanted[role]!r} of {where} must be numeric, got {types[wanted[role]].lower()}")
    dated = f"{quote(wanted['prev'])} IS NOT NULL AND {quote(wanted['recent'])} IS NOT NULL"
    periods = PeriodColumns(con, src, dated, source.periodicity, source.integer_periods, source.start)
    prev = periods.expression(wanted["prev"], types[wanted["prev"]])
    recent = periods.expression(wanted["recent"], types[wanted["recent"]])
    prices = "price_prev" in wanted
    p0 = f"CAST({quote(wanted['price_prev'])} AS DOUBLE)" if prices else "NULL"
    p1 = f"CAST({quote(wanted['price_recent'])} AS DOUBLE)" if prices else "NULL"
    y = f"CAST({quote(wanted['y'])} AS DOUBLE)" if "y" in wanted else f"ln({p1} / {p0})"
    group = quote(wanted["group"]) if "group" in wanted else "NULL"
    if "group" in wanted and is_nested_sql(types[wanted["group"]]):
        raise nested_groups(types[wanted["group"]].lower())
    if "group" in wanted and types[wanted["group"]] in FLOAT_TYPES:
        # a NaN id is missing, as in pandas (isnan() would be folded away: DuckDB takes the parquet
        # statistics, which leave NaN out, for proof that there is none; isfinite() is not)
        group = f"CASE WHEN isfinite({group}) THEN {group} END"
    select = f"SELECT {group} AS g, {prev} AS i, {recent} AS j, {y} AS y, {p0} AS p0, {p1} AS p1"
    where = files[0] if len(files) == 1 else source.path
    if not periods.labels:
        return PairQuery(con, f"{select} FROM {src}", "group" in wanted, prices, where)
    # string periods are looked up by a join, which does not keep the rows' order
    pairs = f"{select}, file_index AS file, file_row_number AS row FROM {relation(files, positions=True)}{in_rows}"
    return PairQuery(con, pairs, "group" in wanted, prices, where, " ORDER BY file, row")


def sql_cell_table(
    source: Any,
    start: int | None,
    end: int | None,
    strict: bool = False,
    progress: bool = False,
    rows: tuple[int, int] | None = None,
) -> SqlTable:
    """The cell table of the pairs of `source` (a PairSource) over the window [start, end] (or
    the data's own), grouped in DuckDB; Unsupported where the pyarrow reader must read them
    (pair_query). rows: a row range of a single file (pair_query)."""
    query = pair_query(source, progress, rows)
    import duckdb

    con, pairs = query.con, query.pairs
    log.info("duckdb: the cell table's query")  # in the run's log: a stop from here on interrupts it
    try:
        if query.prices:
            cells = _cells(con, pairs, prices=True)
        else:  # a fast query, redone carefully for the few cells holding a NaN or infinite y
            cells = _cells(con, pairs, prices=False, careful=False)
            keyed = ~(cells["i_null"] | cells["j_null"] | (cells["g_null"] if query.grouped else False))
            suspect = ~(np.isfinite(cells["y"]) & np.isfinite(cells["y2"]) & (cells["y_abs"] <= MAX_ABS_Y)) & keyed
            cells.pop("y_abs")
            if suspect.any():
                keys = _keys(cells, suspect, query.grouped)
                cells = _merge(cells, suspect, _cells(con, pairs, prices=False, only=keys))
    except duckdb.Error as exc:
        raise read_error(query.where, exc) from exc
    return grouped_table(cells, query.grouped, start, end, strict)


def sql_batch(source: Any, progress: bool = False) -> PairBatch:
    """Every pair of `source` with both periods as one batch of host arrays (the pairs that the
    robust method, lsqr/lsmr and accuracy keep in memory), read by DuckDB and handed over through
    Arrow; the batch's cell table then applies the rules as for any batch. Unsupported: see
    pair_query."""
    query = pair_query(source, progress)
    import duckdb

    columns = "g, i, j, y" + (", p0, p1" if query.prices else "")
    try:
        undated = f"SELECT count(*) FROM ({query.pairs}) WHERE i IS NULL OR j IS NULL"
        missing = query.con.execute(undated).fetchall()[0][0]
        dated = f"SELECT {columns} FROM ({query.pairs}) WHERE i IS NOT NULL AND j IS NOT NULL{query.order}"
        arrow = query.con.sql(dated).to_arrow_table()
    except duckdb.Error as exc:
        raise read_error(query.where, exc) from exc

    def numbers(name: str) -> np.ndarray:
        return arrow.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)

    return PairBatch(
        arrow.column("i").to_numpy(zero_copy_only=False).astype(np.int32),
        arrow.column("j").to_numpy(zero_copy_only=False).astype(np.int32),
        numbers("y"),
        group_values(arrow.column("g").combine_chunks()) if query.grouped else None,
        int(missing),
        numbers("p0") if query.prices else None,
        numbers("p1") if query.prices else None,
    )


def _cells(con: Any, pairs: str, prices: bool, careful: bool = True, only: Any = None) -> dict[str, Any]:
    """The pairs grouped by their cell key (g, i, j), nulls included, as host arrays: n pairs,
    the pairs failing each rule on a pair's values (data.rules.VALUE_RULES: invalid_price, absurd_price,
    nonfinite_y, absurd_y; each counted under the first it fails), the sums over the other pairs.
    careful=False: sums over every non-null y without testing each y (a cell holding a NaN or an
    infinite y then has a non-finite sum; null y are counted by count(y)). only: a table of
    (g, i, j) keys to restrict the query to."""
    names = {"price_prev": "p0", "price_recent": "p1", "y": "y"}
    rules = [r for r in VALUE_RULES if prices or not r.needs & {"price_prev", "price_recent"}]
    fails = [sql_condition(r, names) for r in rules]
    ok = " AND ".join(f"NOT {f}" for f in fails)
    aggregates = ["count(*) AS n"]
    if careful:
        for k, r in enumerate(rules):
            earlier = "".join(f"NOT {f} AND " for f in fails[:k])
            aggregates += [f"count(*) FILTER (WHERE {earlier}{fails[k]}) AS {r.reason}"]
        values = {"y": "y", "y2": "y * y"}
        if prices:
            values.update(p_prev="p0", p_recent="p1", p_prev2="p0 * p0", p_recent2="p1 * p1", p_cross="p0 * p1")
        aggregates += [f"sum({v}) FILTER (WHERE {ok}) AS {k}" for k, v in values.items()]
    else:  # only without prices
        counts = {r.reason: "count(*) - count(y)" if r.reason == "nonfinite_y" else "0" for r in rules}
        aggregates += [f"{v} AS {k}" for k, v in counts.items()]
        aggregates += ["sum(y) AS y", "sum(y * y) AS y2"]
        aggregates += ["max(abs(y)) AS y_abs"]  # a cell with an absurd y is summed again, carefully
    source = f"({pairs})"
    if only is not None:
        con.register("only_cells", only)
        source = f"({pairs}) SEMI JOIN only_cells USING ({', '.join(only.column_names)})"
    arrow = con.sql(f"SELECT g, i, j, {', '.join(aggregates)} FROM {source} GROUP BY g, i, j").to_arrow_table()
    import pyarrow.compute as pc

    out: dict[str, Any] = {}
    for name in ("i", "j"):
        out[f"{name}_null"] = pc.is_null(arrow.column(name)).to_numpy(zero_copy_only=False)
        out[name] = arrow.column(name).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    group = arrow.column("g").combine_chunks()
    out["g_null"] = pc.is_null(group).to_numpy(zero_copy_only=False)
    out["g"] = group  # an Arrow array: nullable integers stay integers
    for name in arrow.column_names[3:]:
        column = arrow.column(name).fill_null(0)
        out[name] = column.to_numpy(zero_copy_only=False).astype(np.float64 if name not in _COUNTS else np.int64)
    return out


_COUNTS = ("n", *(r.reason for r in VALUE_RULES))


def _keys(cells: dict[str, Any], rows: np.ndarray, grouped: bool) -> Any:
    """The (g, i, j) keys of these cells as an Arrow table ((i, j) without groups: g is null)."""
    import pyarrow as pa

    keys = {"g": cells["g"].filter(rows)} if grouped else {}
    return pa.table({**keys, "i": cells["i"][rows], "j": cells["j"][rows]})


def _merge(cells: dict[str, Any], rows: np.ndarray, redone: dict[str, Any]) -> dict[str, Any]:
    """cells with its `rows` replaced by the careful query's cells."""
    import pyarrow as pa

    keep = ~rows
    merged = {k: np.concatenate([v[keep], redone[k].astype(v.dtype, copy=False)]) for k, v in cells.items() if k != "g"}
    merged["g"] = pa.concat_arrays([cells["g"].filter(keep), redone["g"].cast(cells["g"].type)])
    return merged
