"""Revision: how much each period's index moved between successive vintages (the index as it
stood with the data through each period), from the vintages' cell tables."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.cells import CellTable
from ..estimation.result import IndexResult
from .refit import Refit
from .vintages import vintage_log_index


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


def vintage_indices(table: CellTable, refit: Refit, result: IndexResult) -> np.ndarray:
    """(V, G, T) log index of every vintage v = base + 1 .. T - 1 (the data as if v were the last
    period: cells with recent <= v) for the rows of `result`, from one pass over the cells per
    table (see vintages.py), not from a refit per vintage."""
    g = result.log_index.shape[0]
    log_index = np.concatenate(
        [vintage_log_index(tab, result.base_period, refit.method, refit.min_pairs) for tab in refit.tables(table)],
        axis=1,
    )
    if log_index.shape[1:] != (g, table.n_periods):
        raise ValueError(f"the refits give {log_index.shape[1]} rows for the result's {g}: not the same options")
    return log_index


def revision(table: CellTable, refit: Refit, result: IndexResult, log_index: np.ndarray | None = None) -> Revision:
    """How each period's index moves from one vintage to the next (log_index: the vintage_indices(),
    where the caller has them already)."""
    base, t = result.base_period, table.n_periods
    g = result.log_index.shape[0]
    if log_index is None:
        log_index = vintage_indices(table, refit, result)
    stack = np.diff(100.0 * np.exp(log_index), axis=0)  # (V - 1, G, T), NaN where no revision
    count = np.isfinite(stack).sum(axis=0)
    mean, median = np.full((g, t), np.nan), np.full((g, t), np.nan)
    overall_mean, overall_median = np.full(g, np.nan), np.full(g, np.nan)
    (revised,) = np.nonzero(count.any(axis=1))  # the groups with a revision (not the skipped ones)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        part = stack[:, revised]
        mean[revised], median[revised] = np.nanmean(part, axis=0), nan_median(part)
        flat = part.transpose(1, 0, 2).reshape(revised.size, part.shape[0] * t)
        overall_mean[revised], overall_median[revised] = np.nanmean(flat, axis=1), np.nanmedian(flat, axis=1)
    return Revision(mean, median, count, overall_mean, overall_median, list(range(base + 1, t)))


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
