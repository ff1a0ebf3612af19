"""Reading sale records: sorted by DuckDB, read by libcudf or by pyarrow (app/plan.py picks the
reader), then paired by the rules of data/pairing.py into pairs and their cell table."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..backend.core import Backend, to_host
from ..config import AppConfig, option_name
from ..data.calendar import PER_YEAR
from ..data.pair_filters import PairingRules
from ..data.pairing import check_sales, make_pairs
from ..data.rules import add_counts
from ..io import device, device_columns
from ..io.device_sales import pair_sales
from ..io.sales import SaleSource
from ..io.sql_sales import sql_sales
from ..options import property_columns
from .loaded import Loaded, input_window
from .plan import Reader


def load_sales(
    reader: Reader,
    cfg: AppConfig,
    periodicity: str,
    backend: Backend,
    strict: bool,
    keep_pairs: bool,
    prices: bool,
    frame: Any = None,
) -> Loaded:
    """Sale records -> pairs -> cell table by this reader: sorted by DuckDB and paired batch by
    batch (sql_sales.py; io.sql.Unsupported for a column it leaves to pyarrow), read and paired by
    libcudf (io/device_sales.py), or read whole into arrays and paired by make_pairs (`frame`: the
    sale records as a pyarrow Table in memory, in place of data.path's files)."""
    d = cfg.data
    source = replace(sale_source(cfg, periodicity), frame=frame)
    start, end = input_window(cfg.data, periodicity)
    rules = PairingRules(
        pairing=option_name(d.pairing),
        min_holding=d.min_holding,
        max_holding=d.max_holding,
        max_annual_return=d.max_annual_return,
        max_robust_z=d.max_robust_z,
        periods_per_year=PER_YEAR[periodicity],
    )
    if reader is Reader.DUCKDB_SALES:
        paired = sql_sales(source, rules, start, end, keep_pairs, strict, prices, progress=bool(cfg.progress))
        extra = {"n_sales_read": paired.n_sales, "pairing": rules.pairing, "n_pairs_made": made_count(paired, rules)}
        return Loaded(paired.table, paired.first, paired.pairs, paired.dropped, extra=extra)
    if reader is Reader.DEVICE_SALES:  # read and paired by libcudf: no kernel to compile
        read = source.read_device()
        check_sales(read.n_sales, read.n_usable)
        ops = device.Ops(device.library())
        extremes = ops.minmax(read.period) or (0, 0)
        first = start if start is not None else extremes[0]
        last = end if end is not None else extremes[1]
        made = pair_sales(ops, read, rules, first, max(last - first + 1, 2))
        n_missing_date, read_dropped, n_sales = read.n_missing_date, read.dropped, read.n_sales
    else:
        raw = source.read()
        check_sales(raw.n_sales, int(raw.period.size))
        first = start if start is not None else int(raw.period.min())
        last = end if end is not None else int(raw.period.max())
        traced = raw.trace is not None
        made = make_pairs(raw.to_sales(backend, first, max(last - first + 1, 2)), rules, backend, traced)
        if raw.trace is not None:  # the pairs' two sales, by their positions among the sales read
            trace = raw.trace.of_pairs(to_host(made.sale_prev), to_host(made.sale_recent))
            made = replace(made, sale_prev=None, sale_recent=None, trace=trace)
        n_missing_date, read_dropped, n_sales = raw.n_missing_date, raw.dropped, raw.n_sales
    pairs = made.as_pairs()
    # the prices' sums only where used (as sql_sales): without them libcudf builds the table on a GPU
    priced = pairs if prices else replace(pairs, price_prev=None, price_recent=None)
    table = device_columns.build_table(priced, backend, strict=strict)
    dropped = add_counts({"sale_missing_date": n_missing_date, **read_dropped}, made.dropped)
    extra = {"n_sales_read": n_sales, "pairing": rules.pairing, "n_pairs_made": made_count(made, rules)}
    # the table on the pairs' device where they are kept (their passes index it), else on the host
    return Loaded(table.to_backend(backend) if keep_pairs else table.to_host(), first, pairs, dropped, extra=extra)


def made_count(made: Any, rules: PairingRules) -> int:
    """The pairs the pairing made, before the holding and return filters dropped some (their drops
    are counted by reason beside it, so that made = kept + dropped)."""
    filters = [*rules.bounded_filters(), "return_outlier"]
    return int(made.n_pairs) + sum(made.dropped.get(reason, 0) for reason in filters)


def sale_source(cfg: AppConfig, periodicity: str) -> SaleSource:
    """The sale-record files, their columns (one property column or a composite key) and options."""
    d = cfg.data
    return SaleSource(
        path=d.path,
        format=option_name(d.format),
        property=property_columns(d.columns.property),
        date=d.columns.date,
        price=d.columns.price,
        group=d.columns.group,
        periodicity=periodicity,
        integer_periods=option_name(d.integer_periods),
        start=d.start,
        batch_rows=int(d.batch_rows),
        memory_limit=d.memory_limit,
        trace=bool(getattr(d, "save_pairs", None)),  # only where the pairs are saved: no cost otherwise
    )
