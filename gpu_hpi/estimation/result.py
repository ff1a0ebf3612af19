"""IndexResult: the estimated indices with their uncertainty, as labelled arrays and pandas frames."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .normal import TableFit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INDEX_COLUMNS = ["group", "period", "log_index", "index", "se", "ci_low", "ci_high", "n_pairs"]


@dataclass(frozen=True)
class IndexResult:
    """Repeat-sales indices of G groups over T periods (the pooled index, if any, is group "ALL").

    groups: (G,) labels; periods: (T,) labels; base_period: position of the period = 100.
    log_index, se: (G, T) float64, NaN where not identified; period_pairs: (G, T) pairs touching
    each period; n_pairs, n_used, n_params: (G,) int; sigma2, r2: (G,) float64;
    skipped: (G,) bool, groups with fewer than min_pairs pairs (all NaN).
    solver_info: per solve ("groups", "pooled") its solver, iterations and stop reason.
    summary: a run's summary.json (drop counts by reason under "dropped"), where a run made it.
    """

    groups: np.ndarray
    periods: np.ndarray
    base_period: int
    log_index: np.ndarray
    se: np.ndarray
    period_pairs: np.ndarray
    n_pairs: np.ndarray
    n_used: np.ndarray
    n_params: np.ndarray
    sigma2: np.ndarray
    r2: np.ndarray
    skipped: np.ndarray
    solver_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dropped(self) -> dict[str, int]:
        """Pairs dropped by reason, as the run that made this result counted them ({} without a run)."""
        return dict(self.summary.get("dropped", {}))

    @classmethod
    def from_fits(
        cls,
        fits: list[tuple[np.ndarray, TableFit]],
        periods: np.ndarray,
        base_period: int,
        min_pairs: int,
        solver_info: dict[str, dict[str, Any]],
    ) -> IndexResult:
        """Stack the fits of several solves (e.g. the groups, then the pooled table) into one result."""

        def stack(name: str) -> np.ndarray:
            return np.concatenate([getattr(f, name) for _, f in fits])

        return cls(
            groups=np.concatenate([labels for labels, _ in fits]).astype(object),
            periods=np.asarray(periods, dtype=object),
            base_period=base_period,
            log_index=stack("log_index"),
            se=stack("se"),
            period_pairs=stack("period_pairs"),
            n_pairs=stack("n_pairs"),
            n_used=stack("n_used"),
            n_params=stack("n_params"),
            sigma2=stack("sigma2"),
            r2=stack("r2"),
            skipped=stack("n_pairs") < min_pairs,
            solver_info=solver_info,
        )

    @property
    def index(self) -> np.ndarray:
        """(G, T) index levels, 100 at the base period."""
        return 100.0 * np.exp(self.log_index)

    def conf_int(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) bounds of the index level: 100 exp(log_index -/+ z se), each (G, T)."""
        if not 0 < level < 1:  # below 0 the bounds came out swapped, without a word
            raise ConfigError(f"the confidence level must be between 0 and 1, got {level}")
        z = NormalDist().inv_cdf(0.5 + level / 2)
        return 100.0 * np.exp(self.log_index - z * self.se), 100.0 * np.exp(self.log_index + z * self.se)

    @property
    def unidentified(self) -> pd.DataFrame:
        """One row per (group, period) left NaN in a group that was estimated, with the reason."""
        g, t = np.nonzero(np.isnan(self.log_index) & ~self.skipped[:, None])
        reason = np.where(self.period_pairs[g, t] == 0, "no pairs", "not connected to the base period")
        return pd.DataFrame({"group": self.groups[g], "period": self.periods[t], "reason": reason})

    def to_frame(self, level: float = 0.95) -> pd.DataFrame:
        """Long frame, one row per (group, period): group, period, log_index, index, se, ci_low,
        ci_high, n_pairs (pairs touching the period)."""
        low, high = self.conf_int(level)
        g, t = self.log_index.shape
        return pd.DataFrame(
            {
                "group": np.repeat(self.groups.astype(str), t),
                "period": np.tile(self.periods.astype(str), g),
                "log_index": self.log_index.ravel(),
                "index": self.index.ravel(),
                "se": self.se.ravel(),
                "ci_low": low.ravel(),
                "ci_high": high.ravel(),
                "n_pairs": self.period_pairs.ravel(),
            }
        )[INDEX_COLUMNS]

    def group_frame(self) -> pd.DataFrame:
        """One row per group: pairs, pairs used, estimated periods, sigma^2, R^2 (uncentred), skipped."""
        return pd.DataFrame(
            {
                "group": self.groups.astype(str),
                "n_pairs": self.n_pairs,
                "n_used": self.n_used,
                "n_params": self.n_params,
                "sigma2": self.sigma2,
                "r2": self.r2,
                "skipped": self.skipped,
            }
        )

    def plot(self, path: str | os.PathLike[str] | None = None, max_groups: int = 6, level: float = 0.95) -> Figure:
        """The pooled (or first) index with its confidence band, and up to `max_groups` group
        indices (those with the most pairs) as thin lines (charts.index_chart): returned as a
        matplotlib Figure (a notebook shows it), and saved where `path` is given: in the format its
        suffix names (.pdf, .svg, ...), else PNG."""
        from ..charts import index_chart

        return index_chart(self, path, max_groups, level)

    def _repr_html_(self, rows: int = 8, ends: int = 2) -> str:
        """A notebook's summary: method, periods, regions, pairs used and left out by reason, the
        base period, and the first / last `ends` index values of up to `rows` series (the pooled
        one first, then the regions with the most pairs)."""
        esc = html.escape
        pooled = self.groups == "ALL"
        n_regions = int((~pooled).sum())
        info = next(iter(self.solver_info.values()), {})
        method = str(info.get("method", "not recorded")) + (f" ({info['solver']} solver)" if "solver" in info else "")
        skipped = int((self.skipped & ~pooled).sum())
        regions = f"{n_regions}" + (f" ({skipped} not estimated: too few pairs)" if skipped else "")
        if pooled.any():
            regions += ", and the pooled index (ALL)" if n_regions else " (the pooled index ALL alone)"
        t = self.periods.shape[0]
        items = [
            ("method", method),
            ("periods", f"{t}: {self.periods[0]} to {self.periods[-1]}" if t else "0"),
            ("base period (= 100)", str(self.periods[self.base_period]) if t else "none"),
            ("regions", regions),
        ]
        # the pooled row is the "pooled" solve's, or the only one of a table without regions
        pooled_solve = "pooled" if "pooled" in self.solver_info else "groups"
        for name, rows_of, solve in (("regions", ~pooled, "groups"), ("pooled index", pooled, pooled_solve)):
            if rows_of.any():
                items.append((f"pairs, {name}", self._pairs_text(rows_of, solve)))
        head = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items)
        order = [*np.flatnonzero(pooled), *(g for g in np.argsort(-self.n_pairs, kind="stable") if not pooled[g])]
        cols = list(range(min(ends, t))) + list(range(max(ends, t - ends), t))
        cells = ["<th>group</th>"] + [f"<th>{esc(str(self.periods[c]))}</th>" for c in cols]
        if t > 2 * ends:
            cells.insert(1 + ends, "<th>&hellip;</th>")
        table = ["<tr>" + "".join(cells) + "</tr>"]
        index = self.index
        for g in order[:rows]:
            values = [f"{index[g, c]:.1f}" if np.isfinite(index[g, c]) else "&ndash;" for c in cols]
            if t > 2 * ends:
                values.insert(ends, "&hellip;")
            table.append(
                f"<tr><th style='text-align:left'>{esc(str(self.groups[g]))}</th>"
                + "".join(f"<td>{v}</td>" for v in values)
                + "</tr>"
            )
        more = f"<p>{len(order) - rows} more series: to_frame()</p>" if len(order) > rows else ""
        return (
            "<div><strong>IndexResult</strong>"
            f"<table>{head}</table>"
            "<p>pairs dropped before the estimate (by the reader's filters) are not part of the result</p>"
            f"<p>index values, first and last periods:</p><table>{''.join(table)}</table>{more}</div>"
        )

    def _pairs_text(self, rows: np.ndarray, solve: str) -> str:
        """Pairs of these rows, used by the fit, and left out by reason (those an estimate of the
        result knows: a group below min_pairs, not connected to the base period, weight 0)."""
        total = int(self.n_pairs[rows].sum())
        used = int(self.n_used[rows].sum())
        skipped = int(self.n_pairs[rows & self.skipped].sum())
        zero = int(self.solver_info.get(solve, {}).get("zero_weight_pairs", 0) or 0)
        apart = int((self.n_pairs - self.n_used)[rows & ~self.skipped].sum()) - zero
        reasons = [
            (skipped, "in groups with too few pairs"),
            (apart, "not connected to the base period"),
            (zero, "weight 0 (Case-Shiller stage 2)"),
        ]
        left = "; ".join(f"{n:,} {why}" for n, why in reasons if n) or "none"
        return f"{total:,} in, {used:,} used; left out: {left}"
