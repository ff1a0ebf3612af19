"""PNG charts: the index (index.png), a grid of small multiples with one panel per region
(regions.png) and the diagnostics (diagnostics.png). matplotlib's object-oriented API without
pyplot: no global figure state, and 0.3 s less import. Period axes are labelled by year."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MAX_PANELS = 50  # regions.png: the regions with the most pairs, beyond this many


def year_ticks(periods: np.ndarray, most: int = 16) -> tuple[np.ndarray, list[str]]:
    """(positions, labels) of the periods that start a year ('2014-01', '2014-Q1', '2014'), every
    k-th year so that at most `most` ticks are drawn."""
    years = np.array([str(p)[:4] for p in periods])
    starts = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    step = max(1, -(-len(starts) // most))
    chosen = starts[::step]
    return chosen, [years[k] for k in chosen]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _main_row(result: Any) -> int:
    pooled = np.flatnonzero(result.groups == "ALL")
    return int(pooled[0]) if pooled.size else 0


def index_chart(result: Any, path: str, max_groups: int = 6, level: float = 0.95) -> None:
    """The pooled (or first) index with its confidence band, and up to `max_groups` group indices
    (those with the most pairs) as thin lines."""
    main = _main_row(result)
    low, high = result.conf_int(level)
    x = np.arange(result.periods.shape[0])
    fig = _figure(10, 5.5)
    ax = fig.subplots()
    others = [g for g in np.argsort(-result.n_pairs, kind="stable") if g != main and not result.skipped[g]]
    for g in others[:max_groups]:
        ax.plot(x, result.index[g], lw=0.9, alpha=0.8, label=str(result.groups[g]))
    ax.fill_between(x, low[main], high[main], color="black", alpha=0.2, lw=0, label=f"{level:.0%} CI")
    ax.plot(x, result.index[main], color="black", lw=2.0, label=str(result.groups[main]))
    ticks, labels = year_ticks(result.periods)
    ax.set_xticks(ticks, labels)
    ax.axhline(100.0, color="grey", lw=0.6, ls=":")
    ax.set_ylabel(f"index ({result.periods[result.base_period]} = 100)")
    ax.set_title("Repeat-sales price index")
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png")


def regions_chart(result: Any, path: str, level: float = 0.95) -> list[str]:
    """One panel per region (the MAX_PANELS with the most pairs), each with its confidence band
    and the pooled index faint behind; returns the regions drawn."""
    main = _main_row(result)
    pooled = result.groups[main] == "ALL"
    regions = [g for g in np.argsort(-result.n_pairs, kind="stable") if result.groups[g] != "ALL"]
    regions = [g for g in regions if np.isfinite(result.log_index[g]).sum() > 1][:MAX_PANELS]
    cols = max(1, min(5, len(regions)))
    rows = max(1, -(-len(regions) // cols))
    fig = _figure(3.0 * cols, 2.2 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    low, high = result.conf_int(level)
    x = np.arange(result.periods.shape[0])
    ticks, labels = year_ticks(result.periods, most=4)
    for ax, g in zip(axes, regions, strict=False):
        if pooled:
            ax.plot(x, result.index[main], color="grey", lw=0.8, alpha=0.5)
        ax.fill_between(x, low[g], high[g], color="C0", alpha=0.25, lw=0)
        ax.plot(x, result.index[g], color="C0", lw=1.2)
        ax.set_title(f"{result.groups[g]} ({int(result.n_pairs[g]):,} pairs)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xticks(ticks, labels)
    for ax in axes[len(regions) :]:
        ax.set_visible(False)
    note = " (grey: the pooled index)" if pooled else ""
    fig.suptitle(f"Index by region, {level:.0%} confidence band{note}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return [str(result.groups[g]) for g in regions]


def diagnostics_chart(frame: pd.DataFrame, periods: np.ndarray, path: str, groups: int = 6) -> None:
    """Volatility (rolling s.d. of % changes) and, where computed, the mean revision per period of
    the pooled index (or the first groups), from diagnostics.csv's frame."""
    panels = ["volatility"] + (["revision_mean"] if "revision_mean" in frame else [])
    titles = {"volatility": "volatility (s.d. of % changes)", "revision_mean": "mean revision (index points)"}
    names = list(dict.fromkeys(frame["group"]))
    shown = ["ALL"] if "ALL" in names else names[:groups]
    fig = _figure(10, 3.2 * len(panels))
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True, squeeze=False)).ravel()
    x = np.arange(len(periods))
    ticks, labels = year_ticks(periods)
    for ax, column in zip(axes, panels, strict=True):
        for name in shown:
            values = frame.loc[frame["group"] == name, column].to_numpy(dtype=float)
            ax.plot(x, values, lw=1.2, label=name)
        ax.set_title(titles[column], fontsize=9)
        ax.set_xticks(ticks, labels)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png")
