"""The charts (charts.py): year ticks; index.png's legend (the regions drawn of how many, the pooled
band within the line's width), regions.png's grid, filled periods dashed and the seasonally adjusted
series, axis labels on every panel; the regions' small multiples up to the panel limit. Which charts
a run writes: app/test_pipeline.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gpu_hpi
from gpu_hpi.analysis.series import diagnostics_frame, fill_gaps, seasonal_adjust, volatility
from gpu_hpi.charts import MAX_PANELS, diagnostics_figure, grid_shape, index_chart, regions_figure, year_ticks

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def _result(n: int, groups: int, t: int = 36, seed: int = 0, gap: tuple[int, int] | None = None) -> Any:
    """Monthly indices of `groups` regions and the pooled one (groups=0: the pooled one alone); gap:
    periods [a, b] that region 0 has no pair touching (pairs spanning them keep the rest connected)."""
    rng = np.random.default_rng(seed)
    prev = rng.integers(0, t - 1, n)
    recent = np.minimum(prev + 1 + rng.geometric(0.15, n), t - 1)
    group = rng.integers(0, max(groups, 1), n)
    trend = np.cumsum(rng.normal(0.005, 0.01, (max(groups, 1), t)), axis=1)
    y = trend[group, recent] - trend[group, prev] + rng.normal(0, 0.1, n)
    if gap is not None:
        a, b = gap
        out = (group == 0) & (((prev >= a) & (prev <= b)) | ((recent >= a) & (recent <= b)))
        prev, recent, group, y = prev[~out], recent[~out], group[~out], y[~out]
    labels = np.array([f"{2010 + k // 12}-{k % 12 + 1:02d}" for k in range(t)])
    return gpu_hpi.estimate_index(
        prev, recent, y, group if groups else None, n_periods=t, backend="cpu", period_labels=labels, min_pairs=10
    )


@pytest.fixture(scope="module")
def twenty() -> Any:
    return _result(8000, 20)


@pytest.fixture(scope="module")
def twenty_panels(twenty: Any) -> tuple[Any, list[str]]:
    """regions.png's figure of `twenty` and its regions drawn, made once: the tests only read it."""
    return regions_figure(twenty)


def _labels(ax: Any) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_year_ticks_at_the_first_period_of_each_year() -> None:
    months = np.array([f"{y}-{m:02d}" for y in range(2014, 2017) for m in range(1, 13)])[3:]
    positions, labels = year_ticks(months)
    assert positions.tolist() == [0, 9, 21] and labels == ["2014", "2015", "2016"]
    quarters = np.array([f"{y}-Q{q}" for y in range(1990, 2030) for q in range(1, 5)])
    positions, labels = year_ticks(quarters, most=10)
    assert len(positions) <= 10 and labels[0] == "1990" and all(quarters[p].endswith("Q1") for p in positions)
    assert year_ticks(np.array(["2001", "2002"]))[1] == ["2001", "2002"]


def test_index_legend_says_which_regions_of_how_many(twenty: Any) -> None:
    ax = index_chart(twenty, None, max_groups=6).axes[0]
    assert ax.get_legend().get_title().get_text() == "6 of 20 regions shown (most pairs)"
    regions = twenty.groups != "ALL"
    most = twenty.groups[regions][np.argsort(-twenty.n_pairs[regions], kind="stable")][:6]
    assert _labels(ax) == [*map(str, most), "95% CI", "ALL"]
    everything = index_chart(twenty, None, max_groups=50).axes[0]
    assert everything.get_legend().get_title().get_text() == "20 of 20 regions shown"
    assert index_chart(twenty, None, max_groups=0).axes[0].get_legend().get_title().get_text() == (
        "0 of 20 regions shown (most pairs)"
    )
    # a region below min_pairs is counted, and said not estimated
    skipped = dataclasses.replace(twenty, skipped=twenty.groups == twenty.groups[0])
    title = index_chart(skipped, None, max_groups=50).axes[0].get_legend().get_title().get_text()
    assert title == "19 of 20 regions shown (most pairs); 1 not estimated (too few pairs)"
    one = _result(2000, 1)
    assert index_chart(one, None).axes[0].get_legend().get_title().get_text() == "1 of 1 region shown"
    alone = _result(2000, 0)  # the pooled index alone: no regions to count
    assert alone.groups.tolist() == ["ALL"]
    assert index_chart(alone, None).axes[0].get_legend().get_title().get_text() == ""


def _band_heights_px(ax: Any) -> np.ndarray:
    """Height in pixels of the band (the axes' one PolyCollection) at each period, from its
    drawn polygon."""
    (band,) = ax.collections
    xy = ax.transData.transform(band.get_paths()[0].vertices)
    data_x = np.round(band.get_paths()[0].vertices[:, 0], 6)
    return np.array([np.ptp(xy[data_x == x, 1]) for x in np.unique(data_x)])


def test_pooled_band_is_visible_or_the_legend_says_it_is_within_the_line(twenty: Any) -> None:
    fig = index_chart(twenty, None, max_groups=6)
    ax = fig.axes[0]
    main_px = 2.0 * fig.dpi / 72.0
    heights = _band_heights_px(ax)
    assert np.mean(heights > main_px + 4.0) > 0.5  # shows beyond the line in most periods
    assert "95% CI" in _labels(ax)
    # the same estimate 50 times as precise (as from a far larger sample): not widened, but said
    precise = dataclasses.replace(twenty, se=twenty.se / 50)
    fig = index_chart(precise, None, max_groups=6)
    ax = fig.axes[0]
    assert np.mean(_band_heights_px(ax) > main_px + 4.0) < 0.5
    (said,) = [label for label in _labels(ax) if label.startswith("95% CI")]
    low, high = precise.conf_int()
    half = np.nanmax(high[precise.groups == "ALL"] - low[precise.groups == "ALL"]) / 2
    assert said == f"95% CI: within the line's width in most periods (at most ±{half:.2g} points)"


def test_index_chart_axes_labelled(twenty: Any) -> None:
    ax = twenty.plot(max_groups=3).axes[0]
    assert ax.get_xlabel() == "year" and ax.get_ylabel() == "index (2010-01 = 100)"


def test_grid_fits_the_number_of_regions(twenty_panels: tuple[Any, list[str]]) -> None:
    assert [grid_shape(n) for n in (1, 2, 3, 4, 5, 17, 20, MAX_PANELS)] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 2),
        (2, 3),
        (4, 5),
        (4, 5),
        (7, 8),
    ]
    fig, drawn = twenty_panels
    assert len(drawn) == 20 and len(fig.axes) == 20 and all(ax.get_visible() for ax in fig.axes)
    assert fig.axes[0].get_gridspec().get_geometry() == (4, 5)
    five = _result(3000, 5)
    fig, drawn = regions_figure(five)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(drawn) == 5 and len(visible) == 5 and fig.axes[0].get_gridspec().get_geometry() == (2, 3)
    width, height = fig.get_size_inches()
    assert 0.5 < height / width < 1.0  # not a strip of thin panels


def _labelled_panels(fig: Any) -> None:
    """Every visible panel of regions.png: one scale for all; a y label and tick labels in the first
    column, an x label and year tick labels on the lowest panel of each column (on one scale, the
    others need none)."""
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len({ax.get_xlim() for ax in visible}) == 1 and len({ax.get_ylim() for ax in visible}) == 1
    for ax in visible:
        spec = ax.get_subplotspec()
        row, col = spec.rowspan.start, spec.colspan.start
        assert (ax.get_ylabel() != "") == (col == 0)
        assert ax.yaxis.get_tick_params().get("labelleft", True) is (col == 0)
        below = [
            other
            for other in visible
            if other.get_subplotspec().colspan.start == col and other.get_subplotspec().rowspan.start > row
        ]
        lowest = not below
        assert (ax.get_xlabel() == "year") == lowest
        assert ax.xaxis.get_tick_params().get("labelbottom", True) is lowest  # year labels below the lowest only
    assert any(ax.get_ylabel() == "index (2010-01 = 100)" for ax in visible)


def test_regions_panels_labelled(twenty_panels: tuple[Any, list[str]]) -> None:
    _labelled_panels(twenty_panels[0])
    five, _ = regions_figure(_result(3000, 5))
    _labelled_panels(five)
    # five in a 2 x 3 grid: the third column's lowest panel stands in the first row, above an empty slot
    top_right = [ax for ax in five.axes if ax.get_visible() and ax.get_subplotspec().colspan.start == 2]
    assert len(top_right) == 1 and top_right[0].get_xlabel() == "year"


def test_the_panels_scale_is_the_one_shared_axes_autoscale_to(twenty_panels: tuple[Any, list[str]]) -> None:
    """regions.png's panels do not share their axes (a limit set on one of n shared axes visits all
    n); their one scale is the one matplotlib's own sharex / sharey autoscaling gives the same data."""
    from matplotlib.figure import Figure

    fig, drawn = twenty_panels
    shared = Figure().subplots(1, len(drawn), sharex=True, sharey=True)
    for source, ax in zip(fig.axes, shared, strict=True):
        for line in source.get_lines():
            ax.plot(line.get_xdata(), line.get_ydata())
        for band in source.collections:
            (path,) = band.get_paths()
            ax.fill(*path.vertices.T)
    np.testing.assert_allclose(fig.axes[0].get_xlim(), shared[0].get_xlim(), rtol=1e-12)
    np.testing.assert_allclose(fig.axes[0].get_ylim(), shared[0].get_ylim(), rtol=1e-12)


def test_diagnostics_panels_labelled(twenty: Any) -> None:
    frame = diagnostics_frame(twenty, volatility(twenty, 3), None)
    frame["revision_mean"] = 0.5
    fig = diagnostics_figure(frame, twenty.periods)
    assert len(fig.axes) == 2
    assert [ax.get_ylabel() for ax in fig.axes] == ["s.d. of % changes", "index points"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["year", "year"]


def _panel(fig: Any, region: str) -> Any:
    (ax,) = [ax for ax in fig.axes if ax.get_visible() and ax.get_title().startswith(f"{region} (")]
    return ax


def test_filled_periods_dashed_and_the_seasonally_adjusted_series_drawn() -> None:
    result = _result(6000, 3, gap=(12, 14))
    log_index, filled = fill_gaps(result.log_index, "linear")
    region0 = int(np.flatnonzero(result.groups == 0)[0])
    assert np.flatnonzero(filled[region0]).tolist() == [12, 13, 14] and filled.sum() == 3
    adjusted, done = seasonal_adjust(log_index, "month", result.base_period)
    assert done.all()
    columns = {"index": 100 * np.exp(log_index), "filled": filled, "index_sa": 100 * np.exp(adjusted)}
    fig, _ = regions_figure(result, columns=columns)
    ax = _panel(fig, "0")
    (dashed,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    ys = np.asarray(dashed.get_ydata(), dtype=float)
    assert np.flatnonzero(np.isfinite(ys)).tolist() == [11, 12, 13, 14, 15]  # the gap and its bounds
    np.testing.assert_allclose(ys[11:16], columns["index"][region0, 11:16])
    solid = [line for line in ax.get_lines() if line.get_linestyle() == "-" and line.get_color() == "C0"]
    assert len(solid) == 1 and np.isnan(np.asarray(solid[0].get_ydata(), dtype=float)[12:15]).all()
    for region in ("1", "2"):  # nothing filled there: no dashed line
        assert not [line for line in _panel(fig, region).get_lines() if line.get_linestyle() == "--"]
    for region, row in (("0", region0), ("1", region0 + 1)):
        (sa,) = [line for line in _panel(fig, region).get_lines() if line.get_gid() == "seasonally_adjusted"]
        np.testing.assert_allclose(np.asarray(sa.get_ydata(), dtype=float), columns["index_sa"][row])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "estimate",
        "95% confidence band",
        "pooled index (ALL)",
        "filled periods (index.fill)",
        "seasonally adjusted",
    ]
    plain, _ = regions_figure(result)  # neither asked for: neither drawn nor in the legend
    assert not [line for ax in plain.axes for line in ax.get_lines() if line.get_linestyle() == "--" or line.get_gid()]
    assert [t.get_text() for t in plain.legends[0].get_texts()] == [
        "estimate",
        "95% confidence band",
        "pooled index (ALL)",
    ]


def test_plot_returns_the_figure_and_saves_it_where_asked(twenty: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from matplotlib.figure import Figure

    monkeypatch.chdir(tmp_path)
    fig = twenty.plot()
    assert isinstance(fig, Figure) and list(tmp_path.iterdir()) == []
    assert fig._repr_png_()[:4] == b"\x89PNG"  # what a notebook shows, without pyplot
    saved = twenty.plot(str(tmp_path / "index.png"), 3)
    assert isinstance(saved, Figure) and (tmp_path / "index.png").read_bytes()[:4] == b"\x89PNG"
    assert twenty.plot(tmp_path / "as_path.png").axes[0].get_ylabel() and (tmp_path / "as_path.png").exists()
    # in the format the suffix names (PNG bytes under a .pdf name before); PNG where it names none
    twenty.plot(tmp_path / "index.pdf")
    twenty.plot(tmp_path / "index.svg")
    twenty.plot(tmp_path / ".index.png.tmp")
    assert (tmp_path / "index.pdf").read_bytes()[:5] == b"%PDF-" and b"<svg" in (tmp_path / "index.svg").read_bytes()
    assert (tmp_path / ".index.png.tmp").read_bytes()[:4] == b"\x89PNG"


def test_regions_chart_draws_at_most_the_panel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_hpi import charts

    assert MAX_PANELS == 50
    limit = 7  # the rule at a smaller limit: a figure of 50 panels takes ~1.3 s to make
    monkeypatch.setattr(charts, "MAX_PANELS", limit)
    rng = np.random.default_rng(0)
    n, groups, t = 10_000, 12, 24
    prev = rng.integers(0, t - 1, n)
    recent = np.minimum(prev + 1 + rng.geometric(0.3, n), t - 1)
    group = rng.integers(0, groups, n)
    y = rng.normal(0, 0.05, n)
    result = gpu_hpi.estimate_index(prev, recent, y, group, n_periods=t, backend="cpu")
    fig, drawn = charts.regions_figure(result)
    assert len(drawn) == limit and "ALL" not in drawn
    assert sum(ax.get_visible() for ax in fig.axes) == limit
    order = np.argsort(-result.n_pairs[result.groups != "ALL"], kind="stable")
    assert drawn == [str(g) for g in result.groups[result.groups != "ALL"][order][:limit]]
