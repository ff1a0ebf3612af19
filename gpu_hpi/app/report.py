"""What a run reports: the diagnostics it was asked for and the summary (app/outputs.py writes
them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.accuracy import KeptPairs, cross_validate, forecast_errors, in_sample_errors
from ..analysis.refit import Refit
from ..analysis.revision import revision, vintage_indices, vintages_frame
from ..analysis.series import diagnostics_frame, fill_gaps, seasonal_adjust, smooth, volatility
from ..backend.core import Backend
from ..config import AppConfig, DiagnosticsConfig, IndexConfig, option_name
from ..data.calendar import Calendar
from ..data.cells import CellTable
from ..data.pairs import Pairs, align_groups, pooled_pairs
from ..errors import DataError
from ..estimation.result import IndexResult
from ..synthetic import SyntheticMarket
from .loaded import KeptElsewhere


def series_columns(
    index: IndexConfig, result: IndexResult, periodicity: str, summary: dict[str, Any]
) -> dict[str, Any]:
    """The output columns of index.fill (log_index / index with the inner gaps filled, filled) and
    index.seasonal_adjust (log_index_sa, index_sa), as (G, T) arrays; their counts in summary."""
    columns: dict[str, Any] = {}
    log_index = result.log_index
    if index.fill is not None:
        log_index, filled = fill_gaps(log_index, option_name(index.fill))
        columns.update(log_index=log_index, index=100.0 * np.exp(log_index), filled=filled)
        summary["filled_periods"] = int(filled.sum())
    if index.seasonal_adjust is not None:
        adjusted_log, adjusted = seasonal_adjust(log_index, periodicity, result.base_period)
        columns.update(log_index_sa=adjusted_log, index_sa=100.0 * np.exp(adjusted_log))
        summary["seasonal_adjust"] = {
            "method": option_name(index.seasonal_adjust),
            "adjusted": [str(g) for g in result.groups[adjusted]],
            "not_adjusted": [str(g) for g in result.groups[~adjusted & ~result.skipped]],
        }
    return columns


@dataclass(frozen=True)
class DiagnosticsOutput:
    """frame: diagnostics.csv; accuracy: accuracy.csv (or None); smoothed: (G, T) index_smoothed
    column (or None); summary: the summary.json section."""

    frame: pd.DataFrame
    accuracy: pd.DataFrame | None
    smoothed: np.ndarray | None
    summary: dict[str, Any]
    vintages: pd.DataFrame | None = None  # vintages.parquet


def run_diagnostics(
    cfg: DiagnosticsConfig,
    result: IndexResult,
    table: CellTable,
    pairs: Pairs | None,
    refit: Refit,
    backend: Backend,
    kept: KeptElsewhere | None = None,
) -> DiagnosticsOutput:
    """Volatility, revision, accuracy and smoothing as configured. Revision and accuracy refit the
    index from cell tables (on the host), so they need a table-based method (not robust)."""
    method = refit.method
    vol = volatility(result, int(cfg.volatility_window))
    finite = np.isfinite(vol)
    summary: dict[str, Any] = {
        "volatility_window": int(cfg.volatility_window),
        "mean_volatility": {
            str(g): _num(np.mean(v[f])) if f.any() else None for g, v, f in zip(result.groups, vol, finite, strict=True)
        },
    }
    table_based = not method.needs_pairs
    rev = None
    stack = None  # the vintages' indices, for the forecast error and vintages.parquet
    wants_vintages = cfg.revision or cfg.forecast_error or cfg.vintages
    if wants_vintages and not table_based:  # the vintages are refits from cell tables
        unavailable = f"not available for method={method.name} (it needs the pairs, not a cell table)"
        for name, wanted in (("revision", cfg.revision), ("accuracy_forecast", cfg.forecast_error)):
            if wanted:
                summary[name] = unavailable
        if cfg.vintages:
            summary["vintages"] = unavailable
    elif cfg.forecast_error or cfg.vintages:  # the whole (vintage, group, period) stack
        stack = vintage_indices(table, refit, result)
    if cfg.revision and table_based:  # from the stack, else a batch of groups at a time
        limit = None if stack is not None else cfg.revision_regions  # the stack has every region
        rev = revision(table, refit, result, stack, limit)
        n_regions = table.n_groups if refit.groups and table.group_labels.tolist() != ["ALL"] else 0
        summary["revision"] = {
            "vintages": len(rev.vintages),
            # the regions studied (with the most pairs), of all; the pooled index always
            "regions": {"studied": min(n_regions, limit) if limit is not None else n_regions, "of": n_regions},
            "mean": {str(g): _num(v) for g, v in zip(result.groups, rev.overall_mean, strict=True)},
            "median": {str(g): _num(v) for g, v in zip(result.groups, rev.overall_median, strict=True)},
        }
    errors = []
    if cfg.in_sample_error:
        errors.append(in_sample_errors(table, refit, result))
    if cfg.forecast_error and stack is not None:
        errors.append(forecast_errors(table, refit, result, stack))
    for frame in errors:
        kind = str(frame["kind"].iloc[0])
        summary[f"accuracy_{kind}"] = {
            "rmse": {g: _num(v) for g, v in zip(frame["group"], frame["rmse"], strict=True)},
            "mean_error": {g: _num(v) for g, v in zip(frame["group"], frame["mean_error"], strict=True)},
            # per row as the errors: a pair is scored by its region's index and again by the pooled one
            "n_scored": {g: int(v) for g, v in zip(frame["group"], frame["n_scored"], strict=True)},
        }
    accuracy_frame = None
    if cfg.accuracy_folds:
        if not table_based:
            summary["accuracy"] = f"not available for method={method.name} (it needs the pairs, not a cell table)"
        elif pairs is not None or kept is not None:
            folds = int(cfg.accuracy_folds)
            pooled = not refit.groups or table.group_labels.tolist() == ["ALL"]
            scored = table.pooled() if pooled else table  # cross-validate the group indices, else the pooled
            if pairs is not None:
                passes = KeptPairs(pooled_pairs(pairs) if pooled else align_groups(pairs, table.group_labels), backend)
            else:
                assert kept is not None
                passes = kept.folds(pooled)
            acc = cross_validate(passes, scored, refit, result.base_period, folds)
            accuracy_frame = acc.to_frame()
            summary["accuracy"] = {"folds": acc.folds, **acc.overall}
    if errors:
        accuracy_frame = pd.concat([f for f in (accuracy_frame, *errors) if f is not None], ignore_index=True)
    smoothed = smooth(result, int(cfg.smooth_window)) if cfg.smooth_window else None
    vintage_frame = vintages_frame(result, stack) if cfg.vintages and stack is not None else None
    return DiagnosticsOutput(diagnostics_frame(result, vol, rev), accuracy_frame, smoothed, summary, vintage_frame)


def check_estimated(result: IndexResult, n_pairs: int, dropped: dict[str, int]) -> None:
    """DataError unless some index moved off its base period: an index of NaN everywhere (every
    region skipped or unidentified, e.g. all pairs within one period) is no result."""
    others = np.ones(result.log_index.shape[1], dtype=bool)
    others[result.base_period] = False
    if np.isfinite(result.log_index[:, others]).any():
        return
    why = f"{n_pairs:,} pairs in the cell table"
    if result.skipped.all():
        why += ", every region below index.min_pairs"
    raise DataError(f"no index could be estimated: {why}, no period linked to the base period ({drop_text(dropped)})")


def drop_text(dropped: dict[str, int]) -> str:
    return "dropped: " + ", ".join(f"{k} {v:,}" for k, v in dropped.items()) if dropped else "nothing dropped"


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def run_summary(
    cfg: AppConfig,
    result: IndexResult,
    table: CellTable,
    dropped: dict[str, int],
    backend: Backend,
    calendar: Calendar,
    solver: str,
    market: SyntheticMarket | None,
) -> dict[str, Any]:
    is_pooled = result.groups == "ALL"
    per_group = ~is_pooled if (~is_pooled).any() else is_pooled
    summary: dict[str, Any] = {
        # sale_* reasons count sales (before pairing), the others pairs
        # sale_* count sales; zero_weight pairs are in the table (the estimator, not the reader, left them out)
        "n_pairs_read": table.n_pairs
        + sum(v for k, v in dropped.items() if not k.startswith("sale_") and k != "zero_weight"),
        # by the regional indices (by the pooled one where there are no regions); the pooled one's apart
        "n_pairs_used": int(result.n_used[per_group].sum()),
        "n_pairs_used_pooled": int(result.n_used[is_pooled].sum()) if is_pooled.any() else None,
        "dropped": dropped,
        "method": option_name(cfg.method.name),
        "solver": solver,
        "solver_info": result.solver_info,
        "backend": backend.name,
        "device": backend.device,
        "periodicity": calendar.periodicity,
        "first_period": str(calendar.labels()[0]),
        "last_period": str(calendar.labels()[-1]),
        "base_period": str(result.periods[result.base_period]),
        "n_periods": calendar.n_periods,
        "n_groups": int((~is_pooled).sum()),
        "skipped_groups": [str(g) for g in result.groups[result.skipped]],
        "n_unidentified": len(result.unidentified),
    }
    if market is not None and (result.groups != "ALL").any():
        rows = [int(np.nonzero(result.groups == g)[0][0]) for g in range(market.n_groups) if (result.groups == g).any()]
        true = market.true_log_index[[int(result.groups[r]) for r in rows]]
        true = true - true[:, result.base_period : result.base_period + 1]
        error = np.abs(result.log_index[rows] - true)
        if np.isfinite(error).any():  # regions all skipped: no error to report
            summary["max_abs_error_vs_true_log_index"] = float(np.nanmax(error))
    return summary
