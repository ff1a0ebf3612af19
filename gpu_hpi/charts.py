"""PNG charts: the index (index.png), a grid of small multiples with one panel per region
(regions.png) and the diagnostics (diagnostics.png). matplotlib's object-oriented API without
pyplot: no global figure state, and 0.3 s less import. Period axes are labelled by year. Each
chart is built as a Figure (what a notebook shows) and saved where a path is given."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_PANELS = 50  # regions.png: the regions with the most pairs, beyond this many
MAX_COLUMNS = 8  # regions.png: columns of the grid (50 panels: 8 x 7)
MAIN_WIDTH = 2.0  # index.png: the main index's line, in points
X_LABEL = "year"  # the period axes are ticked at each year's first period


def year_ticks(periods: np.ndarray, most: int = 16) -> tuple[np.ndarray, list[str]]:
    """(positions, labels) of the periods that start a year ('2014-01', '2014-Q1', '2014'), every
    k-th year so that at most `most` ticks are drawn."""
    years = np.array([str(p)[:4] for p in periods])
    starts = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    step = max(1, -(-len(starts) // most))
    chosen = starts[::step]
    return chosen, [years[k] for k in chosen]


def _figure(width: float, height: float, layout: Literal["constrained"] | None = None) -> Figure:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    class ChartFigure(Figure):
        """A Figure that a notebook shows as PNG without pyplot or an inline backend."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png")
            return buffer.getvalue()

    fig = ChartFigure(figsize=(width, height), dpi=110, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is not None:  # in the format its suffix names (pdf, svg, ...), else PNG (the run's temporary names)
        suffix = os.path.splitext(path)[1].lower().lstrip(".")
        fig.savefig(path, format=suffix if suffix in fig.canvas.get_supported_filetypes() else "png")


def _tight(fig: Figure) -> None:
    """The figure's last tight_layout, and no layout engine left: tight_layout leaves a placeholder
    one, for which every savefig would lay the figure out again in a draw of its own."""
    fig.tight_layout()
    fig.set_layout_engine(None)


def _constrained(fig: Figure) -> None:
    """The figure's constrained layout, done once, and no layout engine left: savefig would do it
    again, in a draw of its own."""
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
    fig.set_layout_engine(None)


def _main_row(result: Any) -> int:
    pooled = np.flatnonzero(result.groups == "ALL")
    return int(pooled[0]) if pooled.size else 0


def _index_label(result: Any) -> str:
    return f"index ({result.periods[result.base_period]} = 100)"


def shown_groups(result: Any, max_groups: int) -> tuple[int, list[int]]:
    """index.png's rows: the main one (the pooled index, else the first group) and up to
    `max_groups` others, those with the most pairs that were estimated."""
    main = _main_row(result)
    others = [int(g) for g in np.argsort(-result.n_pairs, kind="stable") if g != main and not result.skipped[g]]
    return main, others[:max_groups]


def regions_shown_text(result: Any, rows: list[int]) -> str | None:
    """What index.png's legend says of the regions it draws, e.g. "6 of 20 regions shown (most
    pairs)"; None where the result has no regions (the pooled index alone)."""
    regions = result.groups != "ALL"
    total = int(regions.sum())
    if total == 0:
        return None
    shown = sum(1 for g in rows if regions[g])
    text = f"{shown} of {total} region{'s' if total != 1 else ''} shown"
    if shown < total:
        text += " (most pairs)"
    skipped = int((result.skipped & regions).sum())
    if skipped:
        text += f"; {skipped} not estimated (too few pairs)"
    return text


def band_pixels(ax: Axes, x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Height in display pixels of a band at each of its estimated periods (the axes' limits and
    position as they stand)."""
    known = np.isfinite(low) & np.isfinite(high)
    bottom = ax.transData.transform(np.column_stack([x[known], low[known]]))[:, 1]
    top = ax.transData.transform(np.column_stack([x[known], high[known]]))[:, 1]
    return np.asarray(top - bottom)


def index_chart(
    result: Any, path: str | os.PathLike[str] | None = None, max_groups: int = 6, level: float = 0.95
) -> Figure:
    """The pooled (or first) index with its confidence band, and up to `max_groups` group indices
    (those with the most pairs) as thin lines; the legend says how many regions are drawn out of
    how many. A band that the main line covers in most periods (a large sample) is not widened:
    its legend entry says it is narrower than the line, and by how much at most."""
    main, others = shown_groups(result, max_groups)
    low, high = result.conf_int(level)
    x = np.arange(result.periods.shape[0])
    fig = _figure(10, 5.5)
    ax = fig.subplots()
    for g in others:
        ax.plot(x, result.index[g], lw=0.9, alpha=0.8, label=str(result.groups[g]))
    band = ax.fill_between(x, low[main], high[main], color="black", alpha=0.2, lw=0, label=f"{level:.0%} CI")
    ax.plot(x, result.index[main], color="black", lw=MAIN_WIDTH, label=str(result.groups[main]))
    ticks, labels = year_ticks(result.periods)
    ax.set_xticks(ticks, labels)
    ax.axhline(100.0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(_index_label(result))
    ax.set_title("Repeat-sales price index")
    fig.tight_layout()  # the axes' final place and limits, so that the band's height in pixels holds
    # the band shows where it reaches 2 px beyond the line on either side; at the base period it is
    # 0 by definition
    line_px = MAIN_WIDTH * fig.dpi / 72.0
    estimated = np.isfinite(low[main]) & (x != result.base_period)
    heights = band_pixels(ax, x[estimated], low[main][estimated], high[main][estimated])
    if heights.size and np.mean(heights < line_px + 4.0) > 0.5:
        half = np.nanmax(high[main] - low[main]) / 2.0
        band.set_label(f"{level:.0%} CI: within the line's width in most periods (at most ±{half:.2g} points)")
    ax.legend(fontsize=8, ncol=2, loc="upper left", title=regions_shown_text(result, [main, *others]), title_fontsize=8)
    _tight(fig)
    _save(fig, path)
    return fig


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of regions.png for n panels: a row of up to 3, else about square
    (ceil(sqrt(n)) columns, at most MAX_COLUMNS)."""
    cols = max(1, n) if n <= 3 else min(MAX_COLUMNS, math.ceil(math.sqrt(n)))
    return max(1, -(-n // cols)), cols


def _filled_segments(values: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """The filled periods with the estimated ones that bound them (NaN elsewhere), so that a dashed
    line joins the solid one across each gap."""
    near = filled.copy()
    near[1:] |= filled[:-1]
    near[:-1] |= filled[1:]
    return np.where(near & np.isfinite(values), values, np.nan)


def _common_limits(panels: list[Axes]) -> None:
    """The limits that axes sharing x and y would autoscale to: the union of the panels' data,
    widened by the axes' margins (rcParams axes.xmargin / ymargin) on each side."""
    from matplotlib.transforms import Bbox

    if panels:
        data = Bbox.union([ax.dataLim for ax in panels])
        (x0, x1), (y0, y1) = data.intervalx, data.intervaly
        dx, dy = (x1 - x0) * panels[0].get_xmargin(), (y1 - y0) * panels[0].get_ymargin()
        for ax in panels:
            ax.set_xlim(x0 - dx, x1 + dx)
            ax.set_ylim(y0 - dy, y1 + dy)


def regions_figure(
    result: Any, level: float = 0.95, columns: Mapping[str, Any] | None = None
) -> tuple[Figure, list[str]]:
    """regions.png as a Figure, and the regions drawn (see regions_chart)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    columns = columns or {}
    main = _main_row(result)
    pooled = result.groups[main] == "ALL"
    regions = [g for g in np.argsort(-result.n_pairs, kind="stable") if result.groups[g] != "ALL"]
    regions = [g for g in regions if np.isfinite(result.log_index[g]).sum() > 1][:MAX_PANELS]
    rows, cols = grid_shape(len(regions))
    width = min(6.0, max(2.6, 12.0 / cols))  # inches per panel: one region is not a stamp
    fig = _figure(width * cols, 0.72 * width * rows + 1.0, layout="constrained")
    # only the drawn slots get axes, and one scale for every panel is set once at the end: axes
    # shared by sharex/sharey would do it, but each limit set on one of n shared axes visits all n
    spec = fig.add_gridspec(rows, cols)
    panels = [fig.add_subplot(spec[k // cols, k % cols]) for k in range(len(regions))]
    low, high = result.conf_int(level)
    x = np.arange(result.periods.shape[0])
    ticks, labels = year_ticks(result.periods, most=4)
    filled = columns.get("filled")
    sa = columns.get("index_sa")
    drew_filled = drew_sa = False
    for k, (g, ax) in enumerate(zip(regions, panels, strict=True)):
        if pooled:
            ax.plot(x, result.index[main], color="grey", lw=0.8, alpha=0.5)
        ax.fill_between(x, low[g], high[g], color="C0", alpha=0.25, lw=0)
        ax.plot(x, result.index[g], color="C0", lw=1.2)
        if filled is not None and np.asarray(filled[g]).any():
            dashed = _filled_segments(np.asarray(columns["index"][g], dtype=float), np.asarray(filled[g], dtype=bool))
            ax.plot(x, dashed, color="C0", lw=1.2, ls="--", gid="filled", zorder=3)
            drew_filled = True
        if sa is not None and np.isfinite(sa[g]).any():
            ax.plot(x, sa[g], color="C1", lw=0.9, alpha=0.9, gid="seasonally_adjusted")
            drew_sa = True
        ax.set_title(f"{result.groups[g]} ({int(result.n_pairs[g]):,} pairs)", fontsize=8)
        ax.tick_params(labelsize=7, labelbottom=False, labelleft=k % cols == 0)
        ax.set_xticks(ticks, labels)
    _common_limits(panels)
    index_label = _index_label(result)
    for first in panels[::cols]:  # the first column
        first.set_ylabel(index_label, fontsize=7)
    for bottom in panels[-cols:]:  # the lowest panel of each column, which may stand above an empty slot
        bottom.xaxis.set_tick_params(labelbottom=True)
        bottom.set_xlabel(X_LABEL, fontsize=7)
    handles: list[Any] = [
        Line2D([], [], color="C0", lw=1.2, label="estimate"),
        Patch(color="C0", alpha=0.25, lw=0, label=f"{level:.0%} confidence band"),
    ]
    if pooled:
        handles.append(Line2D([], [], color="grey", lw=0.8, alpha=0.5, label="pooled index (ALL)"))
    if drew_filled:
        handles.append(Line2D([], [], color="C0", lw=1.2, ls="--", label="filled periods (index.fill)"))
    if drew_sa:
        handles.append(Line2D([], [], color="C1", lw=0.9, alpha=0.9, label="seasonally adjusted"))
    # below the grid, clear of the title; one row where the figure is wide enough
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles) if cols > 1 else 2, fontsize=8)
    total = int((result.groups != "ALL").sum())
    shown = f": {len(regions)} of {total} regions shown (most pairs)" if len(regions) < total else ""
    fig.suptitle(f"Index by region{shown}", fontsize=10)
    _constrained(fig)
    return fig, [str(result.groups[g]) for g in regions]


def regions_chart(
    result: Any,
    path: str | os.PathLike[str] | None,
    level: float = 0.95,
    columns: Mapping[str, Any] | None = None,
) -> list[str]:
    """One panel per region (the MAX_PANELS with the most pairs) in a grid of about square shape,
    each with its confidence band and the pooled index faint behind; `columns` (the run's
    index.fill / index.seasonal_adjust columns: filled, index, index_sa) adds the filled periods
    as a dashed line and the seasonally adjusted series. Returns the regions drawn."""
    fig, drawn = regions_figure(result, level, columns)
    _save(fig, path)
    return drawn


def diagnostics_figure(frame: pd.DataFrame, periods: np.ndarray, groups: int = 6) -> Figure:
    """diagnostics.png as a Figure (see diagnostics_chart)."""
    panels = ["volatility"] + (["revision_mean"] if "revision_mean" in frame else [])
    titles = {"volatility": "volatility (s.d. of % changes)", "revision_mean": "mean revision (index points)"}
    units = {"volatility": "s.d. of % changes", "revision_mean": "index points"}
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
        ax.xaxis.set_tick_params(labelbottom=True)  # each panel read on its own
        ax.set_xlabel(X_LABEL, fontsize=8)
        ax.set_ylabel(units[column], fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    _tight(fig)
    return fig


def diagnostics_chart(
    frame: pd.DataFrame, periods: np.ndarray, path: str | os.PathLike[str] | None, groups: int = 6
) -> Figure:
    """Volatility (rolling s.d. of % changes) and, where computed, the mean revision per period of
    the pooled index (or the first groups), from diagnostics.csv's frame."""
    fig = diagnostics_figure(frame, periods, groups)
    _save(fig, path)
    return fig
