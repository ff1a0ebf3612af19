"""Diagnostics of an index: volatility, revision, accuracy (k-fold cross-validation), smoothing.

Revision and accuracy refit the index from cell tables (truncated, or all pairs less a fold)
rather than re-reading pairs; accuracy needs one pass over the pairs to score held-out pairs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .backend import Backend, resolve_backend
from .cells import CellTable, build_cell_table
from .errors import ConfigError
from .estimate import index_tables
from .methods import CellLookup, MethodOptions, fit_method
from .pairs import Pairs
from .result import IndexResult
from .solvers import identify
from .vintages import vintage_log_index


@dataclass(frozen=True)
class Refit:
    """How the diagnostics re-estimate an index from other cell tables: as the main fit (its
    method; min_pairs, None for each table's number of periods; which indices, the groups' and
    the pooled one), always on the host in float64: a table is a few MB, and its (G, T, T) solves
    gain nothing on a GPU. Only the index is refitted, not its standard errors."""

    method: MethodOptions = field(default_factory=MethodOptions)
    min_pairs: int | None = None
    groups: bool = True
    pooled: bool = True

    def tables(self, table: CellTable) -> list[CellTable]:
        """The host tables whose groups are the rows of the main fit's IndexResult, in its order."""
        return [tab for _, tab in index_tables(table.to_host(), self.groups, self.pooled)]

    def group_log_index(self, table: CellTable, base: int) -> np.ndarray:
        """(G, T) log index of each group of `table` (no pooled index), NaN where not identified."""
        host = table.to_host()
        ident = identify(host, base, host.n_periods if self.min_pairs is None else self.min_pairs)
        fit, _ = fit_method(host, ident, resolve_backend("cpu"), self.method, covariance=False)
        return fit.log_index


def period_changes(result: IndexResult) -> np.ndarray:
    """(G, T) period-on-period % changes of the index level (NaN in the first period)."""
    out = np.full(result.log_index.shape, np.nan)
    out[:, 1:] = 100.0 * np.expm1(np.diff(result.log_index, axis=1))
    return out


def volatility(result: IndexResult, window: int = 3) -> np.ndarray:
    """(G, T) trailing rolling standard deviation (ddof 1) of the % changes over `window` periods;
    NaN until `window` changes are available or where one of them is NaN."""
    if window < 2:
        raise ConfigError(f"volatility window must be at least 2, got {window}")
    changes = pd.DataFrame(period_changes(result).T)
    return changes.rolling(window, min_periods=window).std().to_numpy().T


def smooth(result: IndexResult, window: int) -> np.ndarray:
    """(G, T) centred moving average of the index level over `window` (odd) periods; shorter,
    still centred windows at the ends; NaN values are skipped."""
    if window < 3 or window % 2 == 0:
        raise ConfigError(f"smoothing window must be an odd number >= 3, got {window}")
    frame = pd.DataFrame(result.index.T)
    return frame.rolling(window, center=True, min_periods=1).mean().to_numpy().T


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


def revision(table: CellTable, refit: Refit, result: IndexResult) -> Revision:
    """Re-estimate as if each period v after the base were the last (cells with recent <= v) and
    measure how each period's index moves from one vintage to the next. Every vintage comes from
    one sweep over the cells (see vintages.py), not from a refit per vintage."""
    base, t = result.base_period, table.n_periods
    g = result.log_index.shape[0]
    vintages = list(range(base + 1, t))
    log_index = np.concatenate(
        [vintage_log_index(tab, base, refit.method, refit.min_pairs) for tab in refit.tables(table)], axis=1
    )
    if log_index.shape[1:] != (g, t):
        raise ValueError(f"the refits give {log_index.shape[1]} rows for the result's {g}: not the same options")
    stack = np.diff(100.0 * np.exp(log_index), axis=0)  # (V - 1, G, T), NaN where no revision
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        mean, median = np.nanmean(stack, axis=0), np.nanmedian(stack, axis=0)
        flat = stack.transpose(1, 0, 2).reshape(g, -1)
        overall_mean, overall_median = np.nanmean(flat, axis=1), np.nanmedian(flat, axis=1)
    count = np.isfinite(stack).sum(axis=0)
    return Revision(mean, median, count, overall_mean, overall_median, vintages)


@dataclass(frozen=True)
class Accuracy:
    """Out-of-sample errors of held-out pairs' y (log price ratio), per group of `result` and
    overall: mean and median absolute error, RMSE, pairs scored and pairs not scored (a period
    not identified without their fold)."""

    groups: np.ndarray
    mean_abs: np.ndarray
    median_abs: np.ndarray
    rmse: np.ndarray
    n_scored: np.ndarray
    n_unscored: np.ndarray
    overall: dict[str, float]
    folds: int

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "group": self.groups.astype(str),
                "mean_abs_error": self.mean_abs,
                "median_abs_error": self.median_abs,
                "rmse": self.rmse,
                "n_scored": self.n_scored,
                "n_unscored": self.n_unscored,
            }
        )


def fold_of(n: int, folds: int, start: int = 0) -> np.ndarray:
    """Fold of pairs start..start+n-1 by a multiplicative hash of their position: reproducible and
    independent of the data's order of groups or periods."""
    position = np.arange(start, start + n, dtype=np.uint64)
    return ((position * np.uint64(2654435761)) % np.uint64(2**32) % np.uint64(folds)).astype(np.int8)


def accuracy(
    pairs: Pairs, table: CellTable, refit: Refit, result: IndexResult, backend: Backend, folds: int = 10
) -> Accuracy:
    """k-fold cross-validation over the pairs: fit on the table of all pairs less the fold's table,
    predict each held-out pair's y as index_j - index_i of its group (the table's groups).
    The same three steps run per partition on a Dask cluster (distributed.dask_accuracy)."""
    check_folds(folds)
    betas = fold_betas(table, fold_tables(pairs, table, folds, backend), refit, result.base_period)
    err, grp, in_table = fold_errors(pairs, table, betas, backend)
    return accuracy_stats(err, grp, in_table, table.group_labels, folds)


def check_folds(folds: int) -> None:
    if not 2 <= folds <= 100:
        raise ConfigError(f"accuracy folds must be between 2 and 100, got {folds}")


def fold_tables(pairs: Pairs, table: CellTable, folds: int, backend: Backend, start: int = 0) -> list[CellTable]:
    """The cell table of each fold's pairs (pairs coded by the table's groups; `start`: the
    position of the first pair in the whole data, which the folds hash)."""
    xp = backend.xp
    fold = xp.asarray(fold_of(pairs.n_pairs, folds, start))
    # one pass builds every fold's table: the fold is a second group dimension
    group = xp.zeros(pairs.n_pairs, dtype=np.int32) if pairs.group is None else pairs.group.astype(np.int32)
    split = replace(
        pairs, group=xp.where(group < 0, -1, group * folds + fold), group_labels=np.arange(table.n_groups * folds)
    )
    by_fold = build_cell_table(split, backend)
    out = []
    for f in range(folds):
        part = by_fold.select(by_fold.group % folds == f)
        out.append(replace(part, group=part.group // folds, group_labels=table.group_labels, dropped={}))
    return out


def fold_betas(table: CellTable, tables: list[CellTable], refit: Refit, base: int) -> np.ndarray:
    """(folds, G, T) log index of each fold's complement (NaN where not identified)."""
    betas = np.full((len(tables), table.n_groups, table.n_periods), np.nan)
    host = table.to_host()
    for f, part in enumerate(tables):
        rest = host - part.to_host()  # a few MB: merged and refitted on the host
        rows = {str(gr): k for k, gr in enumerate(rest.group_labels)}
        fitted = refit.group_log_index(rest, base)
        for k, label in enumerate(table.group_labels):
            if str(label) in rows:
                betas[f, k] = fitted[rows[str(label)]]
    return betas


def fold_errors(
    pairs: Pairs, table: CellTable, betas: np.ndarray, backend: Backend, start: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host arrays over the pairs: error of y predicted by its fold's complement (NaN where not
    predicted), its group code in the table, and whether it is in the table at all."""
    xp = backend.xp
    folds = betas.shape[0]
    fold = xp.asarray(fold_of(pairs.n_pairs, folds, start)).astype(np.int64)
    cell, _ = CellLookup(table, backend).cells(pairs)
    safe = xp.maximum(cell, 0)
    g, i, j = table.group[safe], table.prev[safe], table.recent[safe]
    bet = xp.asarray(betas)
    pred = bet[fold, g, j] - bet[fold, g, i]
    err = xp.where(cell >= 0, pairs.y.astype(np.float64) - pred, xp.nan)
    return backend.to_host(err), backend.to_host(g), backend.to_host(cell >= 0)


def accuracy_stats(err: np.ndarray, grp: np.ndarray, in_table: np.ndarray, labels: np.ndarray, folds: int) -> Accuracy:
    scored = in_table & np.isfinite(err)
    frame = pd.DataFrame({"group": grp[scored], "abs": np.abs(err[scored]), "sq": err[scored] ** 2})
    stats = (
        frame.groupby("group")
        .agg(mean_abs=("abs", "mean"), median_abs=("abs", "median"), mse=("sq", "mean"), n=("abs", "size"))
        .reindex(range(len(labels)))
    )
    unscored = np.bincount(grp[in_table & ~scored], minlength=len(labels))
    overall = {
        "mean_abs_error": float(frame["abs"].mean()) if len(frame) else float("nan"),
        "median_abs_error": float(frame["abs"].median()) if len(frame) else float("nan"),
        "rmse": float(np.sqrt(frame["sq"].mean())) if len(frame) else float("nan"),
        "n_scored": len(frame),
        "n_unscored": int(unscored.sum()),
    }
    return Accuracy(
        np.asarray(labels, dtype=object),
        stats["mean_abs"].to_numpy(),
        stats["median_abs"].to_numpy(),
        np.sqrt(stats["mse"].to_numpy()),
        stats["n"].fillna(0).to_numpy().astype(np.int64),
        unscored,
        overall,
        folds,
    )


def diagnostics_frame(result: IndexResult, vol: np.ndarray, rev: Revision | None) -> pd.DataFrame:
    """Long frame: group, period, change_pct, volatility, revision_mean, revision_median, n_revisions."""
    g, t = result.log_index.shape
    cols: dict[str, Any] = {
        "group": np.repeat(result.groups.astype(str), t),
        "period": np.tile(result.periods.astype(str), g),
        "change_pct": period_changes(result).ravel(),
        "volatility": vol.ravel(),
    }
    if rev is not None:
        cols.update(revision_mean=rev.mean.ravel(), revision_median=rev.median.ravel(), n_revisions=rev.count.ravel())
    return pd.DataFrame(cols)
