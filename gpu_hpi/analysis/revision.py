"""Revision: how much each period's index moved between successive vintages (the index as it
stood with the data through each period), from the vintages' cell tables.

The statistics are per group, so they are taken a batch of groups at a time as the vintages are
solved (vintages.vintage_blocks): the (vintage, group, period) stack, 1.2 GB at 10,000 groups of
123 periods, is never held unless asked for (vintages.parquet, the forecast error), and the groups
with no estimate cost nothing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.cells import CellTable
from ..estimation.result import IndexResult
from .refit import Refit
from .vintages import VINTAGE_NUMBERS, vintage_blocks


@dataclass(frozen=True)
class Revision:
    """per_period: (G, T) mean and median of the changes of each period's index level (index
    points) between successive vintages, and the number of revisions; overall: per group, the
    mean and median over all revisions of all periods; vintages: the last periods fitted."""

    mean: np.ndarray
    median: np.ndarray
    count: np.ndarray
    overall_mean: np.ndarray
    overall_median: np.ndarray
    vintages: list[int]


def for_each_vintage_block(
    table: CellTable,
    refit: Refit,
    result: IndexResult,
    consume: Callable[[np.ndarray, np.ndarray], None],
    regions: int | None = None,
) -> None:
    """vintages.vintage_blocks over the refit's tables, rows numbered as the rows of `result`;
    regions: of a table of more regions, only the cells of the `regions` with the most pairs (the
    others have none left: skipped, never solved)."""
    tables = [largest_regions(tab, regions) for tab in refit.tables(table)]
    g = result.log_index.shape[0]
    rows = sum(tab.n_groups for tab in tables)
    if rows != g:
        raise ValueError(f"the refits give {rows} rows for the result's {g}: not the same options")
    offset = 0
    for tab in tables:

        def shifted(part: np.ndarray, block: np.ndarray, at: int = offset) -> None:
            consume(part + at, block)

        vintage_blocks(tab, result.base_period, shifted, refit.method, refit.min_pairs)
        offset += tab.n_groups


def largest_regions(table: CellTable, regions: int | None) -> CellTable:
    """The table's cells of its `regions` regions with the most pairs (ties: the first), all of
    them where it has no more (None: every region); the regions' codes and labels kept."""
    if regions is None or table.n_groups <= regions:
        return table
    pairs = np.bincount(table.group, weights=table.count, minlength=table.n_groups)
    kept = np.zeros(table.n_groups, dtype=bool)
    kept[np.argsort(-pairs, kind="stable")[:regions]] = True
    return table.select(kept[table.group])


def vintage_indices(table: CellTable, refit: Refit, result: IndexResult) -> np.ndarray:
    """(V, G, T) log index of every vintage v = base + 1 .. T - 1 (the data as if v were the last
    period: cells with recent <= v) for the rows of `result`, from one pass over the cells per
    table (see vintages.py), not from a refit per vintage."""
    g, t = result.log_index.shape
    out = np.full((max(0, t - result.base_period - 1), g, t), np.nan)

    def gather(rows: np.ndarray, block: np.ndarray) -> None:
        out[:, rows] = block.transpose(1, 0, 2)

    for_each_vintage_block(table, refit, result, gather)
    return out


def revision(
    table: CellTable,
    refit: Refit,
    result: IndexResult,
    log_index: np.ndarray | None = None,
    regions: int | None = None,
) -> Revision:
    """How each period's index moves from one vintage to the next (log_index: the vintage_indices(),
    where the caller has them already; else the vintages are solved here a batch of groups at a
    time and dropped once counted, of at most `regions` regions, those with the most pairs, and
    the pooled index)."""
    base = result.base_period
    g, t = result.log_index.shape
    mean, median = np.full((g, t), np.nan), np.full((g, t), np.nan)
    count = np.zeros((g, t), dtype=np.int64)
    overall_mean, overall_median = np.full(g, np.nan), np.full(g, np.nan)

    def add(rows: np.ndarray, block: np.ndarray) -> None:
        part = revision_stats(block)
        count[rows] = part.count
        (revised,) = np.nonzero(part.count.any(axis=1))  # the groups with a revision
        at = rows[revised]
        mean[at], median[at] = part.mean[revised], part.median[revised]
        overall_mean[at], overall_median[at] = part.overall_mean[revised], part.overall_median[revised]

    if log_index is None:
        for_each_vintage_block(table, refit, result, add, regions)
    else:
        step = max(1, VINTAGE_NUMBERS // max(1, log_index.shape[0] * t))
        for g0 in range(0, g, step):
            rows = np.arange(g0, min(g0 + step, g))
            add(rows, log_index[:, rows].transpose(1, 0, 2))
    return Revision(mean, median, count, overall_mean, overall_median, list(range(base + 1, t)))


def revision_stats(block: np.ndarray) -> Revision:
    """The revision of a (b, V, T) block of vintages' log indices (vintages left empty): the
    numbers of np.nanmean and np.nanmedian over the level changes from each vintage with an
    estimate to the next, the sums in the same order as over the whole (V, G, T) stack, NaN where
    there is none."""
    b = block.shape[0]
    level = np.exp(block)
    level *= 100.0
    # (b, V - 1, T): each vintage's level less the last vintage's that had one (a region skipped
    # in a vintage, too few pairs then, is revised from its last estimate), NaN where no revision
    stack = np.empty((b, max(level.shape[1] - 1, 0), level.shape[2]))
    last = level[:, 0].copy()
    for v in range(1, level.shape[1]):
        current = level[:, v]
        np.subtract(current, last, out=stack[:, v - 1])
        np.copyto(last, current, where=~np.isnan(current))
    del level, last
    missing = np.isnan(stack)
    present = stack.shape[1] - missing.sum(axis=1)
    filled = np.where(missing, 0.0, stack)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1) / present
        overall_mean = filled.reshape(b, -1).sum(axis=1) / present.sum(axis=1)
    median = nan_median(stack.transpose(1, 0, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        overall_median = np.nanmedian(stack.reshape(b, -1), axis=1)
    count = np.isfinite(stack).sum(axis=1)
    return Revision(mean, median, count, overall_mean, overall_median, [])


def nan_median(a: np.ndarray) -> np.ndarray:
    """np.nanmedian(a, axis=0), the same numbers from one sort along the axis (NaN sorts last):
    numpy's masked-array path for such short columns took 10x as long."""
    if not len(a):
        return np.full(a.shape[1:], np.nan)
    s = np.sort(a, axis=0)
    n = (~np.isnan(s)).sum(axis=0, keepdims=True)
    low, high = (np.take_along_axis(s, np.maximum(k, 0), axis=0) for k in ((n - 1) // 2, n // 2))
    return np.where(n > 0, (low + high) / 2, np.nan)[0]


def vintages_frame(result: IndexResult, vintage_index: np.ndarray) -> pd.DataFrame:
    """vintages.parquet: one row per (vintage, group, period) with an estimate: the index as it
    stood with data through each period (the vintage's label is its last period)."""
    k, g, t = np.nonzero(np.isfinite(vintage_index))
    first = result.base_period + 1
    log_index = vintage_index[k, g, t]
    return pd.DataFrame(
        {
            "vintage": result.periods[first + k].astype(str),
            "group": result.groups[g].astype(str),
            "period": result.periods[t].astype(str),
            "log_index": log_index,
            "index": 100.0 * np.exp(log_index),
        }
    )
