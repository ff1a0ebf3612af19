"""Raw sale records -> repeat-sales pairs, with the filters index producers use.

One sort of the sales by (property, period, date, row) on the backend (numpy or CuPy), then
vectorised neighbour comparisons: no Python loop over rows.

Rules, in order:
1. sales with a missing or non-positive price or one no house has (above data.rules.MAX_PRICE,
   10^15: the same sales give the same pairs whether the method keeps their prices or not), or a
   period outside the window, are dropped
   (counted per sale: `sale_invalid_price`, `sale_outside_window`) before pairing, so a property's
   remaining sales pair across them;
2. of several sales of one property in one period, the last (latest date, then last row) is kept
   (`sale_same_period_duplicate`);
3. pairs: each sale with the next sale of the property (`consecutive`), or every two sales of it
   (`all`);
4. the pair filters (data/pair_filters.py, counted per pair): holding, annual return, robust z.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..backend.core import Backend, to_host
from ..errors import DataError
from .pair_filters import PairingRules, filter_pairs
from .pairs import Pairs
from .rules import MAX_PRICE, add_counts


@dataclass(frozen=True)
class Sales:
    """Sale records on one backend: key: (S,) int64 codes (one per distinct property key);
    period: (S,) int64 period positions in [0, n_periods) (or any int: outside is dropped);
    order: (S,) int64 finer time within the period (e.g. days; ties broken by row);
    price: (S,) float64; group: (S,) int codes into group_labels, or None."""

    key: Any
    period: Any
    order: Any
    price: Any
    group: Any
    group_labels: np.ndarray
    n_periods: int


@dataclass(frozen=True)
class TracedPairs(Pairs):
    """Pairs made from sale records with their two sales' trace: a host table (pyarrow), one row per
    pair, of the property key, both sales' dates and source files and rows (data.save_pairs)."""

    trace: Any = None


@dataclass(frozen=True)
class SalePairs:
    """Pairs made from sales (backend arrays): group codes (or None), prev, recent periods,
    price_prev, price_recent, y = log(price_recent / price_prev); dropped: reason -> count.
    Where traced: sale_prev, sale_recent, the positions of each pair's two sales in the sales
    paired, or trace, the readers' table of those sales (one row per pair; data.save_pairs)."""

    group: Any
    prev: Any
    recent: Any
    price_prev: Any
    price_recent: Any
    y: Any
    group_labels: np.ndarray
    n_periods: int
    dropped: dict[str, int] = field(default_factory=dict)
    sale_prev: Any = None
    sale_recent: Any = None
    trace: Any = None

    @property
    def n_pairs(self) -> int:
        return int(self.y.shape[0])

    def as_pairs(self) -> Pairs:
        """The pairs as the estimators take them (periods, y, groups and prices), with their trace
        where they have one."""
        columns = (
            self.prev,
            self.recent,
            self.y,
            self.group,
            self.group_labels,
            self.n_periods,
            self.price_prev,
            self.price_recent,
        )
        return Pairs(*columns) if self.trace is None else TracedPairs(*columns, trace=self.trace)


def check_sales(n_sales: int, n_usable: int) -> None:
    """DataError unless some of the n_sales read have both a date and a property key (n_usable)."""
    if n_sales == 0:
        raise DataError("the input holds no sales")
    if n_usable == 0:
        raise DataError(f"none of the {n_sales} sales has both a date and a property key")


def make_pairs(sales: Sales, rules: PairingRules, backend: Backend, trace: bool = False) -> SalePairs:
    """Pairs of the sales under the rules (see the module docstring); trace: with the positions of
    each pair's two sales in `sales` (sale_prev, sale_recent)."""
    xp = backend.xp
    dropped: dict[str, int] = {}

    def drop(reason: str, bad: Any) -> None:
        count = int(xp.count_nonzero(bad))
        if count:
            dropped[reason] = dropped.get(reason, 0) + count

    price = sales.price.astype(np.float64)
    bad_price = ~((price > 0) & (price <= MAX_PRICE))  # NaN fails both; a price no house has (absurd_price)
    outside = ~bad_price & ((sales.period < 0) | (sales.period >= sales.n_periods))
    drop("sale_invalid_price", bad_price)
    drop("sale_outside_window", outside)
    prop, period, order, group = sales.key, sales.period, sales.order, sales.group
    rows = xp.arange(prop.shape[0]) if trace else None
    if bool((bad_price | outside).any()):  # copies only when something is dropped
        keep = ~(bad_price | outside)
        prop, period, order, price = prop[keep], period[keep], order[keep], price[keep]
        group = None if group is None else group[keep]
        rows = None if rows is None else rows[keep]

    perm = _time_order(xp, prop, period, order)
    del order
    # rule 2 found in sorted order, then one gather of the kept sales: no intermediate sorted copies
    # of every column
    dup = same_period_duplicates(xp, prop[perm], period[perm])
    drop("sale_same_period_duplicate", dup)
    index = perm[~dup]
    del perm, dup
    group = None if group is None else group[index]
    rows = None if rows is None else rows[index]
    kept = (prop[index], period[index], price[index], group)
    pairs = _pair_kept(xp, *kept, rules.pairing, sales.group_labels, sales.n_periods, rows)
    ok, filtered = filter_pairs(xp, pairs.prev, pairs.recent, pairs.y, pairs.group, rules, len(sales.group_labels))
    return select_pairs(pairs, ok, add_counts(dropped, filtered))


def pair_sorted_sales(
    xp: Any,
    prop: Any,
    period: Any,
    price: Any,
    group: Any,
    pairing: str,
    group_labels: np.ndarray,
    n_periods: int,
    trace: bool = False,
) -> SalePairs:
    """Rules 2 and 3 on valid sales already sorted by (property, period, order, row), e.g. by a
    database: prop any integers equal exactly for the sales of one property. The pairs before the
    pair filters, with the same-period duplicates counted in `dropped`; trace: with the positions
    of each pair's two sales (sale_prev, sale_recent)."""
    dup = same_period_duplicates(xp, prop, period)
    n_dup = int(xp.count_nonzero(dup))
    rows = xp.arange(prop.shape[0]) if trace else None
    if n_dup:
        keep = ~dup
        prop, period, price = prop[keep], period[keep], price[keep]
        group = None if group is None else group[keep]
        rows = None if rows is None else rows[keep]
    pairs = _pair_kept(xp, prop, period, price, group, pairing, group_labels, n_periods, rows)
    return replace(pairs, dropped={"sale_same_period_duplicate": n_dup} if n_dup else {})


def same_period_duplicates(xp: Any, prop: Any, period: Any) -> Any:
    """Rule 2 on sales sorted by (property, period, order, row): True where the next sale is of the
    same property in the same period, which replaces this one."""
    dup = xp.zeros(prop.shape, dtype=bool)
    dup[:-1] = (prop[:-1] == prop[1:]) & (period[:-1] == period[1:])
    return dup


def _pair_kept(
    xp: Any,
    prop: Any,
    period: Any,
    price: Any,
    group: Any,
    pairing: str,
    labels: np.ndarray,
    n_periods: int,
    rows: Any = None,
) -> SalePairs:
    """Rule 3 on the kept sales, sorted by property then period; rows: their positions among the
    sales given (None: not traced)."""
    first, second = _pair_indices(xp, prop, pairing)
    p0, p1 = price[first], price[second]
    pair_group = None if group is None else group[second]
    traced = (None, None) if rows is None else (rows[first], rows[second])
    with np.errstate(over="ignore"):  # a ratio past float64 is dropped and counted by the pair rules, not warned of
        y = xp.log(p1 / p0)
    return SalePairs(pair_group, period[first], period[second], p0, p1, y, labels, n_periods, {}, *traced)


def select_pairs(pairs: SalePairs, ok: Any, dropped: dict[str, int]) -> SalePairs:
    """The pairs where ok (a mask), with these drop counts."""
    if bool(ok.all()):
        return replace(pairs, dropped=dropped)

    def part(values: Any) -> Any:
        return None if values is None else values[ok]

    # the trace is a host table: its rows taken by position (no pyarrow import in data/)
    trace = None if pairs.trace is None else pairs.trace.take(np.flatnonzero(np.asarray(to_host(ok))))
    return SalePairs(
        part(pairs.group),
        pairs.prev[ok],
        pairs.recent[ok],
        part(pairs.price_prev),
        part(pairs.price_recent),
        pairs.y[ok],
        pairs.group_labels,
        pairs.n_periods,
        dropped,
        part(pairs.sale_prev),
        part(pairs.sale_recent),
        trace,
    )


def _time_order(xp: Any, prop: Any, period: Any, order: Any) -> Any:
    """Permutation sorting the sales by property, period, finer order, then row: one stable
    argsort of a composite int64 key where the three fit in it (days, as usual), else a lexsort of
    the four keys (e.g. nanosecond timestamps)."""
    n = prop.shape[0]
    if n == 0:
        return xp.zeros(0, dtype=np.int64)
    p_lo, o_lo = int(period.min()), int(order.min())
    p_span, o_span = int(period.max()) - p_lo + 1, int(order.max()) - o_lo + 1
    if (int(prop.max()) + 1) * p_span * o_span < 2**62:
        key = prop.astype(np.int64) * p_span  # built in place: one int64 array, no temporaries
        key += period
        key -= p_lo
        key *= o_span
        key += order
        key -= o_lo
        return xp.argsort(key, kind="stable")  # stable: equal keys keep their row order
    return xp.lexsort(xp.stack([xp.arange(n), order, period, prop]))


def _pair_indices(xp: Any, prop: Any, pairing: str) -> tuple[Any, Any]:
    """(earlier, later) sale indices of the pairs, for sales sorted by property then time."""
    n = prop.shape[0]
    if pairing == "consecutive":
        (first,) = xp.nonzero(prop[:-1] == prop[1:]) if n > 1 else (xp.zeros(0, dtype=np.int64),)
        return first, first + 1
    # all pairs within a property: for each distance d, sales d apart of the same property
    firsts, seconds = [], []
    d = 1
    while d < n:
        (first,) = xp.nonzero(prop[:-d] == prop[d:])
        if first.shape[0] == 0:
            break  # no property has more than d sales
        firsts.append(first)
        seconds.append(first + d)
        d += 1
    if not firsts:
        empty = xp.zeros(0, dtype=np.int64)
        return empty, empty
    first, second = xp.concatenate(firsts), xp.concatenate(seconds)
    order = xp.lexsort(xp.stack([second, first]))  # pairs by earlier sale, then later
    return first[order], second[order]
