"""Accuracy: the errors of pairs' log price ratios predicted by an index that did not see them
(k-fold cross-validation: refit from all pairs less a fold, from cell tables; one pass over the
pairs scores the held-out ones), in sample, and as forecasts from the index through the period
before the sale."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..backend.core import Backend, array_namespace, to_host
from ..data.cells import CellTable
from ..data.keys import segment_medians
from ..data.pairs import Pairs
from ..data.tabulate import build_cell_table
from ..errors import ConfigError
from ..estimation.methods.cells import CellLookup
from ..estimation.result import IndexResult
from .refit import Refit


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
                "kind": "kfold",
                "group": self.groups.astype(str),
                "mean_error": np.nan,  # not kept by the folds
                "mean_abs_error": self.mean_abs,
                "median_abs_error": self.median_abs,
                "rmse": self.rmse,
                "n_scored": self.n_scored,
                "n_unscored": self.n_unscored,
            }
        )


def in_sample_errors(table: CellTable, refit: Refit, result: IndexResult) -> pd.DataFrame:
    """hpiR's in-sample accuracy: each pair's log price ratio predicted by the full index,
    d = log_index[recent] - log_index[prev], per row of `result`; from the cell table's sums."""
    return _cell_errors(
        table, refit, result, "in_sample", lambda rows, tab: rows[tab.group, tab.recent] - rows[tab.group, tab.prev]
    )


def forecast_errors(table: CellTable, refit: Refit, result: IndexResult, vintage_index: np.ndarray) -> pd.DataFrame:
    """hpiR's forecast accuracy: each pair whose later sale falls in period t predicted by the
    index of the vintage through t - 1 (the data then published), the level at t taken as that at
    t - 1: d = index_v[t - 1] - index_v[prev] with v = t - 1. Pairs completed by the base + 1st
    period have no earlier vintage and are not scored. vintage_index: the (V, G, T) vintage_indices()."""
    first = result.base_period + 1  # the first vintage's last period

    def predict(rows: slice, tab: CellTable) -> np.ndarray:
        k = tab.recent - 1 - first  # the vintage through recent - 1
        ok = k >= 0
        d = np.full(tab.n_cells, np.nan)
        stack = vintage_index[:, rows]
        d[ok] = stack[k[ok], tab.group[ok], tab.recent[ok] - 1] - stack[k[ok], tab.group[ok], tab.prev[ok]]
        return d

    return _cell_errors(table, refit, result, "forecast", predict, by_slice=True)


def _cell_errors(
    table: CellTable, refit: Refit, result: IndexResult, kind: str, predict: Any, by_slice: bool = False
) -> pd.DataFrame:
    """Per row of `result`: mean error, RMSE, pairs scored and not (no prediction) of the pairs'
    errors e = y - d, from per-cell sums: sum e = S1 - n d, sum e^2 = S2 - 2 d S1 + n d^2. The
    absolute errors need each pair: not here."""
    parts = []
    offset = 0
    for tab in refit.tables(table):
        rows = slice(offset, offset + tab.n_groups)
        d = predict(rows, tab) if by_slice else predict(result.log_index[rows], tab)
        scored = np.isfinite(d)
        n = tab.count.astype(np.float64)
        dd = np.where(scored, d, 0.0)
        groups = tab.n_groups
        n_scored, sum_e, sum_e2, unscored = (
            np.bincount(tab.group, weights=np.where(mask, values, 0.0), minlength=groups)
            for mask, values in (
                (scored, n),
                (scored, tab.sum_y - n * dd),
                (scored, tab.sum_y2 - 2.0 * dd * tab.sum_y + n * dd * dd),
                (~scored, n),
            )
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            parts.append(
                pd.DataFrame(
                    {
                        "kind": kind,
                        "group": result.groups[rows].astype(str),
                        "mean_error": np.where(n_scored > 0, sum_e / n_scored, np.nan),
                        "mean_abs_error": np.nan,
                        "median_abs_error": np.nan,
                        "rmse": np.where(n_scored > 0, np.sqrt(np.maximum(sum_e2, 0.0) / n_scored), np.nan),
                        "n_scored": np.rint(n_scored).astype(np.int64),
                        "n_unscored": np.rint(unscored).astype(np.int64),
                    }
                )
            )
        offset += groups
    return pd.concat(parts, ignore_index=True)


def fold_of(n: int, folds: int, start: int = 0) -> np.ndarray:
    """Fold of pairs start..start+n-1 by a multiplicative hash of their position: reproducible and
    independent of the data's order of groups or periods."""
    position = np.arange(start, start + n, dtype=np.uint64)
    return ((position * np.uint64(2654435761)) % np.uint64(2**32) % np.uint64(folds)).astype(np.int8)


class FoldPasses(Protocol):
    """Cross-validation's two passes over the pairs, wherever they are kept: in this process
    (`KeptPairs`) or on Dask workers (dask.passes.DaskFolds)."""

    def fold_tables(self, table: CellTable, folds: int) -> list[CellTable]:
        """The cell table of each fold's pairs."""
        ...

    def fold_errors(self, table: CellTable, betas: np.ndarray) -> tuple[Any, Any, Any]:
        """fold_errors' arrays over all the pairs."""
        ...


@dataclass(frozen=True)
class KeptPairs:
    """Pairs of this process (numpy or CuPy), coded by the scored table's groups."""

    pairs: Pairs
    backend: Backend

    def fold_tables(self, table: CellTable, folds: int) -> list[CellTable]:
        return fold_tables(self.pairs, table, folds, self.backend)

    def fold_errors(self, table: CellTable, betas: np.ndarray) -> tuple[Any, Any, Any]:
        return fold_errors(self.pairs, table, betas, self.backend)


def cross_validate(passes: FoldPasses, table: CellTable, refit: Refit, base: int, folds: int = 10) -> Accuracy:
    """k-fold cross-validation: fit on the table of all pairs less the fold's table, predict each
    held-out pair's y as index_j - index_i of its group (the table's groups), wherever the pairs
    are kept (one process, or the partitions of a Dask cluster: the same steps)."""
    check_folds(folds)
    betas = fold_betas(table, passes.fold_tables(table, folds), refit, base)
    err, grp, in_table = passes.fold_errors(table, betas)
    return accuracy_stats(err, grp, in_table, table.group_labels, folds)


def accuracy(
    pairs: Pairs, table: CellTable, refit: Refit, result: IndexResult, backend: Backend, folds: int = 10
) -> Accuracy:
    """cross_validate of pairs in this process (coded by the table's groups)."""
    return cross_validate(KeptPairs(pairs, backend), table, refit, result.base_period, folds)


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
) -> tuple[Any, Any, Any]:
    """Arrays over the pairs, on their backend: error of y predicted by its fold's complement (NaN
    where not predicted), its group code in the table, and whether it is in the table at all."""
    xp = backend.xp
    folds = betas.shape[0]
    fold = xp.asarray(fold_of(pairs.n_pairs, folds, start)).astype(np.int64)
    cell, _ = CellLookup(table, backend).cells(pairs)
    safe = xp.maximum(cell, 0)
    g, i, j = table.group[safe], table.prev[safe], table.recent[safe]
    bet = xp.asarray(betas)
    pred = bet[fold, g, j] - bet[fold, g, i]
    err = xp.where(cell >= 0, pairs.y.astype(np.float64) - pred, xp.nan)
    return err, g, cell >= 0


def accuracy_stats(err: Any, grp: Any, in_table: Any, labels: np.ndarray, folds: int) -> Accuracy:
    """The errors' statistics per group and overall, computed where the errors are (on the device
    only the per-group numbers come back, not an array over the pairs)."""
    xp = array_namespace(err)
    n_groups = len(labels)
    scored = in_table & xp.isfinite(err)
    group = grp[scored].astype(np.int64)
    abs_err = xp.abs(err[scored])
    n_scored = int(abs_err.shape[0])

    def per_group(codes: Any, weights: Any = None) -> np.ndarray:
        """bincount over the groups (zeros for no codes: CuPy's bincount refuses an empty array)."""
        if codes.shape[0] == 0:
            return np.zeros(n_groups, dtype=np.int64 if weights is None else np.float64)
        return to_host(xp.bincount(codes, weights=weights, minlength=n_groups))

    n = per_group(group)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_abs = per_group(group, abs_err) / n
        mse = per_group(group, abs_err * abs_err) / n
    by_group = xp.argsort(group, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(n)])  # the groups' segments in the sorted errors
    median_abs = segment_medians(xp, abs_err[by_group], bounds)
    unscored = per_group(grp[in_table & ~scored].astype(np.int64))
    overall = {
        "mean_abs_error": float(abs_err.mean()) if n_scored else float("nan"),
        "median_abs_error": float(xp.median(abs_err)) if n_scored else float("nan"),
        "rmse": float(xp.sqrt((abs_err * abs_err).mean())) if n_scored else float("nan"),
        "n_scored": n_scored,
        "n_unscored": int(unscored.sum()),
    }
    return Accuracy(
        np.asarray(labels, dtype=object),
        mean_abs,
        median_abs,
        np.sqrt(mse),
        n.astype(np.int64),
        unscored,
        overall,
        folds,
    )
