"""What a run reports (app/report.py): a default run's diagnostics on random tables against the
straightforward computation, fit_index on each truncated table and plain loops over its index
levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from diagnostics_reference import (
    CPU,
    ref_revision_stats,
    ref_volatility,
)

import gpu_hpi
from gpu_hpi.analysis.refit import Refit

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def random_cells(seed: int, t: int = 40) -> gpu_hpi.CellTable:
    """Seven groups over t periods: three plain ones, one whose period 7 no pair touches, one whose
    halves join only at vintage 30, a thin one (skipped in the early vintages), and one sold from
    period 10 on but for the pairs 0 -> 25 and 6 -> 25, which tie it to periods 0 and 6 then."""
    rng = np.random.default_rng(seed)
    parts = []
    for g, n in enumerate((3000, 1500, 800, 800, 800, 120, 500)):
        i = rng.integers(0, t - 1, n)
        j = np.minimum(i + 1 + rng.geometric(0.1, n), t - 1)
        keep = {3: (i != 7) & (j != 7), 4: (i >= 20) | (j < 20), 6: i >= 10}.get(g, np.ones(n, bool))
        i, j = i[keep], j[keep]
        if g == 4:
            i, j = np.append(i, 5), np.append(j, 30)
        if g == 6:
            i, j = np.append(i, [0, 6]), np.append(j, [25, 25])
        parts.append((np.full(len(i), g), i, j))
    group, prev, recent = (np.concatenate(a) for a in zip(*parts, strict=True))
    beta = np.cumsum(rng.normal(0.005, 0.02, (7, t)), axis=1)
    y = beta[group, recent] - beta[group, prev] + rng.normal(0, 0.1, len(group))
    return gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=t, backend=CPU), CPU)


@pytest.mark.parametrize("seed, base, batch", [(1, 0, None), (2, 6, None), (3, 0, 2)])
def test_default_diagnostics_equal_a_fit_per_vintage(
    seed: int, base: int, batch: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A default run's diagnostics (diagnostics.csv and the summary's revision) on random tables
    against the straightforward computation: fit_index on each truncated table, and plain loops
    over its index levels (batch: the vintages' systems built for that many groups at a time)."""
    from gpu_hpi.analysis import vintages
    from gpu_hpi.app.report import run_diagnostics
    from gpu_hpi.config import DiagnosticsConfig

    table = random_cells(seed)
    t = table.n_periods
    if batch:
        monkeypatch.setattr(vintages, "VINTAGE_NUMBERS", 4 * batch * t * t)
    result = gpu_hpi.fit_index(table, base_period=base, backend=CPU)
    out = run_diagnostics(DiagnosticsConfig(), result, table, None, Refit(), CPU)

    levels = []
    for v in range(base + 1, t):
        fitted = gpu_hpi.fit_index(table.truncate(v), base_period=base, backend=CPU)
        assert [str(g) for g in fitted.groups] == [str(g) for g in result.groups]
        level = np.full(result.log_index.shape, np.nan)
        level[:, : v + 1] = 100.0 * np.exp(fitted.log_index)
        levels.append(level)
    want = ref_revision_stats(levels, list(range(base + 1, t)))
    shape = result.log_index.shape
    np.testing.assert_array_equal(out.frame["n_revisions"].to_numpy().reshape(shape), want.count)
    for column, expected in (
        ("revision_mean", want.mean),
        ("revision_median", want.median),
        ("volatility", ref_volatility(result.index, 3)),
    ):
        got = out.frame[column].to_numpy().reshape(shape)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=column)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, err_msg=column)
    summary = out.summary["revision"]
    assert summary["vintages"] == t - base - 1
    for name, expected in (("mean", want.overall_mean), ("median", want.overall_median)):
        got = np.array([np.nan if v is None else v for v in summary[name].values()])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9, err_msg=name)
    # the cases the tables hold: every region revised, but the period never sold never, the thin
    # region only once it has enough pairs, the late one from vintage 25 on
    assert np.isfinite(want.mean[:, base + 1 : t - 2]).any(axis=1).all() and want.count[3, 7] == 0
    assert want.count[5, base + 1] < want.count[0, base + 1] and 0 < want.count[6, 12] < want.count[0, 12]


def test_the_revision_study_covers_the_regions_asked_for(tmp_path: Path) -> None:
    """diagnostics.revision_regions: the regions with the most pairs and ALL are studied, the
    summary says how many of how many; a negative count is refused."""
    from helpers import compose_config

    from gpu_hpi.app import pipeline

    cfg = compose_config("backend=cpu", "data.n_pairs=60000", "output.plot=false", "diagnostics.revision_regions=3")
    summary = pipeline.run(cfg, tmp_path / "three")
    revision = summary["diagnostics"]["revision"]
    assert revision["regions"] == {"studied": 3, "of": 17}
    studied = [g for g, v in revision["mean"].items() if v is not None]
    assert "ALL" in studied and len(studied) == 4
    every = pipeline.run(compose_config("backend=cpu", "data.n_pairs=60000", "output.plot=false"), tmp_path / "all")
    assert every["diagnostics"]["revision"]["regions"] == {"studied": 17, "of": 17}
    assert all(every["diagnostics"]["revision"]["mean"][g] == revision["mean"][g] for g in studied)
    with pytest.raises(gpu_hpi.ConfigError, match=r"diagnostics\.revision_regions must be 0 or more"):
        pipeline.run(compose_config("diagnostics.revision_regions=-1"), tmp_path / "bad")
