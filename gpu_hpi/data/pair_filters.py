"""The pairing's rules (PairingRules), and rule 4 of the pairing (data/pairing.py): the pair
filters, each pair counted under the first it fails: holding period below `min_holding` / above
`max_holding` periods; |annualised log return| above `max_annual_return`; |robust z-score| of the
log return within the group above `max_robust_z` (z = (y - median) / (1.4826 MAD))."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..options import Pairing
from .keys import segment_medians

MAD_TO_SD = 1.482602218505602  # 1 / Phi^-1(3/4): MAD -> standard deviation of a normal
PAIRINGS = tuple(p.value for p in Pairing)


@dataclass(frozen=True)
class PairingRules:
    """pairing: consecutive | all; min_holding / max_holding: periods (None: no bound);
    max_annual_return: bound on |y| / years held (None: off); max_robust_z: bound on the robust
    z-score of y within the group (None: off); periods_per_year: 12 months, 4 quarters, 1 year."""

    pairing: str = "consecutive"
    min_holding: int | None = None
    max_holding: int | None = None
    max_annual_return: float | None = None
    max_robust_z: float | None = None
    periods_per_year: int = 12

    def __post_init__(self) -> None:
        if self.pairing not in PAIRINGS:
            raise ConfigError(f"pairing must be one of {list(PAIRINGS)}, got {self.pairing!r}")
        for name in ("min_holding", "max_holding", "max_annual_return", "max_robust_z"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive (or null for no bound), got {value}")

    def bounded_filters(self) -> list[str]:
        """The drop reasons of the holding and return filters turned on, in the order pairs are tested."""
        named = [
            ("holding_too_short", self.min_holding),
            ("holding_too_long", self.max_holding),
            ("extreme_return", self.max_annual_return),
        ]
        return [reason for reason, bound in named if bound is not None]


def filter_pairs(
    xp: Any, prev: Any, recent: Any, y: Any, group: Any, rules: PairingRules, n_groups: int
) -> tuple[Any, dict[str, int]]:
    """(mask of the pairs kept, reason -> count) under the pair filters of the rules (rule 4), each
    pair counted under the first it fails; group: codes (-1: missing, never an outlier) or None."""
    dropped: dict[str, int] = {}
    hold = recent - prev
    ok = xp.ones(y.shape, dtype=bool)
    tests = []
    if rules.min_holding is not None:
        tests.append(("holding_too_short", hold < rules.min_holding))
    if rules.max_holding is not None:
        tests.append(("holding_too_long", hold > rules.max_holding))
    if rules.max_annual_return is not None:
        tests.append(("extreme_return", xp.abs(y) * rules.periods_per_year / hold > rules.max_annual_return))
    for reason, bad in tests:
        dropped[reason] = int(xp.count_nonzero(bad & ok))
        ok &= ~bad
    if rules.max_robust_z is not None:
        z = robust_z(xp, y, group, ok, n_groups)
        bad = ok & (xp.abs(z) > rules.max_robust_z)
        dropped["return_outlier"] = int(xp.count_nonzero(bad))
        ok &= ~bad
    return ok, {k: v for k, v in dropped.items() if v}


def robust_z(xp: Any, y: Any, group: Any, ok: Any, n_groups: int) -> Any:
    """(y - median) / (1.4826 MAD) within each group, over the pairs still kept (ok); groups are
    sorted once, so every median is a selection within the group's segment."""
    g = xp.zeros(y.shape, dtype=np.int64) if group is None else group.astype(np.int64)
    n = max(n_groups, 1)
    kept = ok & (g >= 0)
    # int16 group keys where they fit: numpy sorts 16-bit keys by radix, 64-bit ones by comparison
    gk, yk = g[kept].astype(np.int16 if n < 2**15 else np.int32), y[kept]
    order = xp.argsort(gk, kind="stable")
    gk, yk = gk[order], yk[order]
    bounds = np.asarray(xp.searchsorted(gk, xp.arange(n + 1)).tolist())
    median = segment_medians(xp, yk, bounds)
    mad = segment_medians(xp, xp.abs(yk - xp.asarray(np.nan_to_num(median))[gk]), bounds) * MAD_TO_SD
    median_g = xp.asarray(np.nan_to_num(median))[xp.maximum(g, 0)]
    mad_g = xp.asarray(np.where(mad > 0, mad, 1.0))[xp.maximum(g, 0)]  # no spread: plain differences
    return xp.where(g >= 0, (y - median_g) / mad_g, 0.0)
