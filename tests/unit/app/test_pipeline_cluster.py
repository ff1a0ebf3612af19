"""The job on a Dask cluster (cluster=local, or a running one by cluster.address): the same index,
accuracy and robust fit as a single process, and what a cluster refuses. Dask's tables themselves:
tests/unit/dask/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import run_app, write_dataset

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Any:
    """The address of a running two-worker cluster, for CLI runs with cluster.address (one cluster
    for the module instead of one a run; cluster=local itself, its worker processes, is tested
    below). Its workers are threads of this process that speak TCP: every task and result is
    serialized as between processes, without two interpreters to start."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow  # starts a cluster of its own
def test_cli_cluster_local_equals_single_process(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds")
    common = ["data=pairs", f"data.path={tmp_path / 'ds'}", "data.batch_rows=7000", "diagnostics.revision=false"]
    single = run_app(tmp_path, *common, name="single").ok()
    dask = run_app(tmp_path, *common, "cluster=local", "cluster.n_workers=1", name="dask").ok()
    a, b = single.frame, dask.frame
    pd.testing.assert_frame_equal(a[["group", "period", "n_pairs"]], b[["group", "period", "n_pairs"]])
    np.testing.assert_allclose(a["log_index"], b["log_index"], atol=1e-10, rtol=0)
    np.testing.assert_allclose(a["se"], b["se"], rtol=1e-10)
    assert dask.summary["dask_workers"] == 1  # one worker process to start (the tests below run on two)
    assert dask.summary["dropped"] == single.summary["dropped"]


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["solver=lsqr"], "cluster=none"),
        (["method=case_shiller", "method.stage2=absolute"], "cluster=none"),
    ],
)
def test_cli_cluster_refuses_what_needs_the_pairs(tmp_path: Path, overrides: list[str], fragment: str) -> None:
    write_dataset(tmp_path / "ds", n=5_000, parts=1)
    run = run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'ds'}", "cluster=local", *overrides)
    run.assert_failed(fragment)


def test_cli_cluster_refuses_csv(tmp_path: Path) -> None:
    frame = write_dataset(tmp_path / "ds", n=3_000, parts=1)
    frame.to_csv(tmp_path / "pairs.csv", index=False)
    run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'pairs.csv'}", "cluster=local").assert_failed("parquet")


@pytest.mark.parametrize(
    "extra",
    [
        [],
        pytest.param(["index.groups=false"], marks=pytest.mark.slow),
        pytest.param(["method=case_shiller"], marks=pytest.mark.slow),
    ],
)
def test_cli_cluster_accuracy_equals_single_process(tmp_path: Path, scheduler: str, extra: list[str]) -> None:
    """k-fold accuracy with the passes over the pairs as Dask tasks: folds hash a pair's position in
    the whole dataset, so the errors equal the single-process ones."""

    def null_periods(frame: pd.DataFrame) -> None:  # they shift the positions the folds hash
        frame.iloc[::501, frame.columns.get_loc("PrevYearMonth")] = pd.NaT

    frame = write_dataset(tmp_path / "ds", n=30_000, parts=3, edit=null_periods)
    common = [
        "data=pairs",
        f"data.path={tmp_path / 'ds'}",
        "data.batch_rows=6000",
        "diagnostics.revision=false",
        "diagnostics.accuracy_folds=4",
        *extra,
    ]
    single = run_app(tmp_path, *common, name="single").ok()
    dask = run_app(tmp_path, *common, "cluster=local", f"cluster.address={scheduler}", name="dask").ok()
    a = pd.read_csv(single.dir / "accuracy.csv")
    b = pd.read_csv(dask.dir / "accuracy.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    assert single.summary["diagnostics"]["accuracy"] == pytest.approx(dask.summary["diagnostics"]["accuracy"])
    assert dask.summary["dropped"]["missing_period"] == len(range(0, len(frame), 501))


@pytest.mark.slow  # ~20 passes over the pairs as Dask tasks for each of the two fits
def test_cli_cluster_robust_equals_single_process(tmp_path: Path, scheduler: str) -> None:
    """The robust fits of the regions and of the pooled index, with their passes over the pairs as
    Dask tasks (the per-group median |e| by an exact distributed selection), give the
    single-process index, se and scale."""

    def outliers(frame: pd.DataFrame) -> None:  # so that the weights matter
        frame.loc[frame.index[::53], "LogPriceDiff"] += 1.5

    write_dataset(tmp_path / "ds", n=24_000, parts=3, edit=outliers)
    common = [
        "data=pairs",
        f"data.path={tmp_path / 'ds'}",
        "data.batch_rows=6000",
        "diagnostics.revision=false",
        "method=robust",
        "method.tol=1e-8",  # 9-10 steps: both runs take the same ones, to ~1e-15
        "method.max_iter=200",
    ]
    single = run_app(tmp_path, *common, name="single").ok()
    dask = run_app(tmp_path, *common, "cluster=local", f"cluster.address={scheduler}", name="dask").ok()
    a, b = single.frame, dask.frame
    np.testing.assert_allclose(a["log_index"], b["log_index"], atol=1e-10, rtol=0)
    np.testing.assert_allclose(a["se"], b["se"], rtol=1e-8)
    assert set(single.summary["solver_info"]) == {"groups", "pooled"}
    for name in single.summary["solver_info"]:
        s, d = single.summary["solver_info"][name], dask.summary["solver_info"][name]
        assert s["converged"] and d["converged"]
        np.testing.assert_allclose(s["scale"], d["scale"], rtol=1e-12)


def test_cluster_options_that_cannot_apply_say_so(tmp_path: Path) -> None:
    """A Dask cluster reads pair files; a synthetic market (or stored tables, sale records, a
    frame) is read in this process, which a warning now says (the options went without effect)."""
    run = run_app(tmp_path, "data.n_pairs=2000", "cluster=local", "diagnostics.revision=false").ok()
    assert "the Dask cluster reads pair files (data=pairs); the embedded synthetic market: read in this process" in (
        run.stderr
    )
    assert "dask" not in " ".join(run.summary["timings_s"])
