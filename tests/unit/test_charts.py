"""The charts (charts.py): year ticks, the regions' small multiples up to the panel limit. Which charts a
run writes: app/test_pipeline.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpu_hpi.charts import MAX_PANELS, year_ticks


def test_year_ticks_at_the_first_period_of_each_year() -> None:
    months = np.array([f"{y}-{m:02d}" for y in range(2014, 2017) for m in range(1, 13)])[3:]
    positions, labels = year_ticks(months)
    assert positions.tolist() == [0, 9, 21] and labels == ["2014", "2015", "2016"]
    quarters = np.array([f"{y}-Q{q}" for y in range(1990, 2030) for q in range(1, 5)])
    positions, labels = year_ticks(quarters, most=10)
    assert len(positions) <= 10 and labels[0] == "1990" and all(quarters[p].endswith("Q1") for p in positions)
    assert year_ticks(np.array(["2001", "2002"]))[1] == ["2001", "2002"]


@pytest.mark.slow  # draws the panel limit's worth of regions
def test_regions_chart_draws_at_most_the_panel_limit(tmp_path: Path) -> None:
    import gpu_hpi
    from gpu_hpi.charts import regions_chart

    rng = np.random.default_rng(0)
    n, groups, t = 40_000, 60, 24
    prev = rng.integers(0, t - 1, n)
    recent = np.minimum(prev + 1 + rng.geometric(0.3, n), t - 1)
    group = rng.integers(0, groups, n)
    y = rng.normal(0, 0.05, n)
    result = gpu_hpi.estimate_index(prev, recent, y, group, n_periods=t, backend="cpu")
    drawn = regions_chart(result, str(tmp_path / "r.png"))
    assert len(drawn) == MAX_PANELS and "ALL" not in drawn
    order = np.argsort(-result.n_pairs[result.groups != "ALL"], kind="stable")
    assert drawn == [str(g) for g in result.groups[result.groups != "ALL"][order][:MAX_PANELS]]
