"""hydra_plugins/gpu_hpi_sweeper: `python -m gpu_hpi -m ...` composes each job once, and each job
gets the configuration Hydra's own sweeper would give it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import main_in_process
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from omegaconf import OmegaConf


def test_a_sweep_composes_each_job_once_as_hydra_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    composed: list[tuple[list[str], dict[str, Any]]] = []
    compose = ConfigLoaderImpl.load_sweep_config

    def counted(self: Any, master_config: Any, sweep_overrides: list[str]) -> Any:
        cfg = compose(self, master_config, sweep_overrides)
        composed.append((list(sweep_overrides), OmegaConf.to_container(cfg, resolve=False)))  # as composed
        return cfg

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", counted)
    sweep = ["method=bmn,case_shiller", "index.base_period=2014-01,2015-06"]
    lean = ["data.n_pairs=3000", "output.plot=false", "output.csv=false", "diagnostics.revision=false"]
    code, _, err = main_in_process(["-m", *lean, *sweep, f"hydra.sweep.dir={tmp_path / 'sw'}"], tmp_path)
    assert code == 0, err
    assert len(composed) == 4  # once a job (Hydra's sweeper and launcher composed each twice)
    saved = [OmegaConf.load(tmp_path / "sw" / str(k) / ".hydra" / "config.yaml") for k in range(4)]
    for (overrides, as_composed), job in zip(composed, saved, strict=True):
        del as_composed["hydra"]  # the job's own numbering and directories
        assert OmegaConf.to_container(job, resolve=False) == as_composed
        assert f"method={job.method.name}" in overrides
    assert [(c.method.name, c.index.base_period) for c in saved] == [
        ("bmn", "2014-01"),
        ("bmn", "2015-06"),
        ("case_shiller", "2014-01"),
        ("case_shiller", "2015-06"),
    ]


def test_a_job_that_does_not_compose_stops_the_sweep_before_any_job(tmp_path: Path) -> None:
    code, _, err = main_in_process(
        ["-m", "data.n_pairs=3000", "output.plot=false", "method=bmn,nosuch", f"hydra.sweep.dir={tmp_path / 'sw'}"],
        tmp_path,
    )
    assert code != 0 and "nosuch" in err
    assert not (tmp_path / "sw" / "0").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [("index.base_period=${nope}", "Interpolation key 'nope' not found"), ("+method.huber=2", "no such option")],
)
def test_a_jobs_value_that_does_not_resolve_or_is_read_by_nothing_is_one_line(
    tmp_path: Path, override: str, message: str
) -> None:
    """As a single run refuses it (a traceback, exit 1, or ignored before)."""
    code, _, err = main_in_process(
        ["-m", "data.n_pairs=3000", "output.plot=false", override, f"hydra.sweep.dir={tmp_path / 'sw'}"], tmp_path
    )
    assert code == 2 and err.startswith(f"gpu_hpi: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "sw" / "0" / "summary.json").exists()


def test_a_sweep_may_repeat_a_job(tmp_path: Path) -> None:
    """Each job gets a configuration of its own, in order (the second of two equal jobs got the
    first's, which Hydra had made read-only: a traceback)."""
    lean = ["data.n_pairs=2000", "output.plot=false", "diagnostics.revision=false"]
    code, _, err = main_in_process(["-m", *lean, "method=bmn,bmn", f"hydra.sweep.dir={tmp_path / 'sw'}"], tmp_path)
    assert code == 0, err
    assert all((tmp_path / "sw" / str(k) / "summary.json").is_file() for k in (0, 1))


def test_the_loader_travels_to_a_launchers_worker_processes() -> None:
    """Launchers that run jobs in other processes (joblib's, submitit's) pickle the context: the
    loader comes back whole, with the configurations kept for its jobs."""
    import pickle

    from hydra_plugins.gpu_hpi_sweeper import ComposedOnce

    loader = ComposedOnce(Loader())
    loader.validating = True
    checked = loader.load_sweep_config(OmegaConf.create({}), ["method=bmn"])  # the sweeper's check
    loader.validating = False
    there = pickle.loads(pickle.dumps(loader))
    assert there.get_search_path() == "the search path"
    assert there.load_sweep_config(OmegaConf.create({}), ["method=bmn"]) == checked
    assert there._kept == {("method=bmn",): []}  # taken by its job


class Loader:
    """A config loader's two methods, picklable."""

    def load_sweep_config(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        return OmegaConf.create({"job": list(sweep_overrides)})

    def get_search_path(self) -> str:
        return "the search path"


def test_a_sweep_job_takes_its_directorys_lock_and_a_pairs_file_of_its_own(tmp_path: Path) -> None:
    """Sweep jobs took no lock (a sweep and a run into one directory mixed their sets, with a
    traceback), and jobs sharing data.save_pairs wrote over each other's pairs without a word."""
    import os

    from sales_reference import random_sales, write_sales

    from gpu_hpi.app.command import own_run_dir

    lean = ["data.n_pairs=3000", "output.plot=false", "diagnostics.revision=false"]
    held = own_run_dir(tmp_path / "sw" / "0")
    try:
        code, _, err = main_in_process(["-m", *lean, f"hydra.sweep.dir={tmp_path / 'sw'}"], tmp_path)
    finally:
        held.close()
    assert code == 2 and f"is in use by another run (pid {os.getpid()})" in err and err.count("\n") == 1, err
    # refused before Hydra staged the job's configuration there (the other run's, to be committed)
    assert sorted(p.name for p in (tmp_path / "sw" / "0").iterdir()) == [".gpu_hpi.lock"]

    sales = write_sales(tmp_path, random_sales(5, n_props=300), ["a", "b", "c"])
    jobs = ["data=transactions", f"data.path={sales}", "data.columns.property=[a,b,c]", "data.columns.group=group"]
    args = ["-m", *jobs, "output.plot=false", "data.max_holding=12,120"]
    shared = tmp_path / "pairs.parquet"
    code, _, err = main_in_process([*args, f"data.save_pairs={shared}", f"hydra.sweep.dir={tmp_path / 's'}"], tmp_path)
    assert code == 2 and f"data.save_pairs={shared} was written by an earlier job of this sweep" in err
    assert (tmp_path / "s" / "0" / "summary.json").exists() and not (tmp_path / "s" / "1" / "summary.json").exists()
    own = f"data.save_pairs={tmp_path}/pairs-${{hydra:job.num}}.parquet"
    code, _, err = main_in_process([*args, own, f"hydra.sweep.dir={tmp_path / 'o'}"], tmp_path)
    assert code == 0 and (tmp_path / "pairs-0.parquet").exists() and (tmp_path / "pairs-1.parquet").exists(), err
