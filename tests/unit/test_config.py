"""The Hydra configuration (config.py): every option of every group composes and validates against its
schema, and bad overrides fail at compose time."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from gpu_hpi import config as C

CONF = Path(C.config_dir())
SCHEMAS: dict[str, Any] = {
    "solver": C.SolverConfig,
    "backend": C.BackendConfig,
    "memory": C.MemoryConfig,
    "method": C.MethodConfig,
    "cluster": C.ClusterConfig,
    "data": {
        "synthetic": C.SyntheticDataConfig,
        "pairs": C.PairsDataConfig,
        "transactions": C.TransactionsDataConfig,
        "cells": C.CellsDataConfig,
    },
}
OPTIONS = sorted((p.parent.name, p.stem) for p in CONF.glob("*/*.yaml"))


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    C.register_configs()


def _compose(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base=None, job_name="test"):
        return compose(config_name="config", overrides=overrides)


def _validated(cfg: DictConfig) -> Any:
    """Resolve everything (no ??? left) and instantiate the structured config."""
    OmegaConf.to_container(cfg, throw_on_missing=True)
    return OmegaConf.to_object(cfg)


def test_every_group_has_options() -> None:
    groups = {g for g, _ in OPTIONS}
    assert groups == {"backend", "cluster", "data", "memory", "method", "solver"}
    assert {o for g, o in OPTIONS if g == "data"} == {"synthetic", "pairs", "transactions", "cells"}
    assert {o for g, o in OPTIONS if g == "method"} == {"bmn", "case_shiller", "robust", "arithmetic"}
    assert {o for g, o in OPTIONS if g == "cluster"} == {"none", "local", "cuda"}
    assert {o for g, o in OPTIONS if g == "solver"} == {"normal", "lsqr", "lsmr"}
    assert {o for g, o in OPTIONS if g == "backend"} == {"auto", "cpu", "gpu"}


def test_default_config_composes() -> None:
    cfg = _compose([])
    app = _validated(cfg)
    assert isinstance(app, C.AppConfig)
    assert isinstance(app.data, C.SyntheticDataConfig)
    assert app.solver.name is C.SolverName.normal and app.backend.name is C.BackendName.auto
    assert app.index.periodicity is C.Periodicity.month and app.index.base_period is None
    assert app.output.csv and app.output.parquet and app.output.plot


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_validates(group: str, option: str, tmp_path: Path) -> None:
    overrides = [f"{group}={option}"]
    if group == "data" and option in ("pairs", "transactions", "cells"):
        overrides.append(f"data.path={tmp_path / 'input.parquet'}")
    cfg = _compose(overrides)
    app = _validated(cfg)
    node = getattr(app, group)
    schema = SCHEMAS[group][option] if isinstance(SCHEMAS[group], dict) else SCHEMAS[group]
    assert isinstance(node, schema), type(node)
    # every key of the yaml file is a field of the schema, with the yaml's value
    raw = OmegaConf.load(CONF / group / f"{option}.yaml")
    assert isinstance(raw, DictConfig)
    fields = {f.name for f in dataclasses.fields(schema)}
    for key in map(str, raw):
        if key == "defaults":
            continue
        assert key in fields, f"{group}/{option}.yaml: {key} is not in {schema.__name__}"
        value = getattr(node, key)
        value = value.value if hasattr(value, "value") else value
        if key == "columns":
            assert dataclasses.asdict(value) == OmegaConf.to_container(raw[key])
        elif not OmegaConf.is_missing(raw, key):
            assert value == raw[key], (key, value, raw[key])
    if hasattr(node, "name"):
        assert node.name.value == option  # solver / backend / method options select themselves
    if group == "cluster":
        assert node.kind.value == option
    if group == "data":
        assert node.kind == option


def test_memory_options_differ() -> None:
    mem = {o: _validated(_compose([f"memory={o}"])).memory for g, o in OPTIONS if g == "memory"}
    assert (mem["pool"].pool, mem["pool"].managed_memory) == (True, False)
    assert (mem["none"].pool, mem["none"].managed_memory) == (False, False)
    assert mem["managed"].managed_memory is True


def test_pairs_needs_a_path() -> None:
    cfg = _compose(["data=pairs"])
    assert OmegaConf.is_missing(cfg.data, "path")
    with pytest.raises(MissingMandatoryValue, match=r"data\.path"):
        OmegaConf.to_container(cfg, throw_on_missing=True)


def test_pairs_overrides_are_typed(tmp_path: Path) -> None:
    cfg = _compose(
        [
            "data=pairs",
            f"data.path={tmp_path}",
            "data.columns.group=null",
            "data.columns.prev=p",
            "data.integer_periods=yyyymm",
            "data.batch_rows=777",
            "data.strict=true",
            "index.periodicity=quarter",
            "index.base_period=2017-Q4",
            "solver=lsmr",
            "solver.iter_lim=50",
        ]
    )
    app = _validated(cfg)
    assert app.data.columns.group is None and app.data.columns.prev == "p"
    assert app.data.integer_periods is C.IntegerPeriods.yyyymm
    assert app.data.batch_rows == 777 and app.data.strict is True
    assert app.index.periodicity is C.Periodicity.quarter and app.index.base_period == "2017-Q4"
    assert app.solver.name is C.SolverName.lsmr and app.solver.iter_lim == 50


BAD = [
    ["solver=foo"],
    ["data.n_pairs=abc"],
    ["backend.name=tpu"],
    ["backend=tpu"],
    ["index.periodicity=day"],
    ["data=pairs", "data.path=x.parquet", "data.format=xlsx"],
    ["data=pairs", "data.path=x.parquet", "data.integer_periods=days"],
    ["data=pairs", "data.path=x.parquet", "data.batch_rows=many"],
    ["solver.tol=small"],
    ["index.groups=maybe"],
    ["data.no_such_option=1"],
    ["method=ols"],
]


@pytest.mark.parametrize("overrides", BAD, ids=[" ".join(o) for o in BAD])
def test_bad_overrides_fail_at_compose_time(overrides: list[str]) -> None:
    with pytest.raises((HydraException, OmegaConfBaseException)) as info:
        _compose(overrides)
    key = overrides[-1].split("=")[0]
    assert key.split(".")[-1] in str(info.value) or overrides[-1].split("=")[1] in str(info.value), str(info.value)


def test_synthetic_options_are_rejected_for_pairs() -> None:
    with pytest.raises((HydraException, OmegaConfBaseException)):
        _compose(["data=pairs", "data.path=x.parquet", "data.n_pairs=10"])


def _iter_yaml() -> Iterator[Path]:
    yield from CONF.glob("*/*.yaml")


def test_every_option_names_its_schema() -> None:
    """Each option's defaults list names its group's schema, so composing validates it."""
    for path in _iter_yaml():
        raw = OmegaConf.load(path)
        assert isinstance(raw, DictConfig)
        assert "defaults" in raw, path
        group = path.parent.name
        schema = f"/schema/data/{path.stem}@_here_" if group == "data" else f"/schema/{group}@_here_"
        assert schema in list(raw.defaults), (path, list(raw.defaults))


@pytest.mark.parametrize("group, name", [(g, "schema") for g in SCHEMAS] + [("data", "pairs_schema")])
def test_a_schema_is_no_choice(group: str, name: str, tmp_path: Path) -> None:
    """The schemas live in a group of their own: `method=schema` is an unknown option, refused in one
    line (exit 2) that lists the real choices, and the schema group itself is no override."""
    from helpers import main_in_process

    rc, out, err = main_in_process([f"{group}={name}", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    options = sorted(o for g, o in OPTIONS if g == group)
    assert (rc, out) == (2, ""), err
    assert err == f"gpu_hpi: error: Could not find '{group}/{name}' (available: {', '.join(options)})\n"
    rc, out, err = main_in_process(["schema/data=pairs", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert rc == 2 and err.startswith("gpu_hpi: error: Could not override 'schema/data'") and err.count("\n") == 1
    assert not (tmp_path / "run" / "summary.json").exists()


def test_info_lines_go_to_the_log_file_only(tmp_path: Path) -> None:
    """The job's INFO lines (backend, reader) are in the run's gpu_hpi.log, not on the terminal."""
    from helpers import main_in_process

    run = tmp_path / "run"
    args = ["data.n_pairs=3000", "index.min_pairs=1", "output.plot=false", "diagnostics.revision=false"]
    rc, out, err = main_in_process([*args, f"hydra.run.dir={run}"], tmp_path)
    assert rc == 0, err
    assert "[INFO]" not in out + err and "[HYDRA]" not in out + err, out + err
    assert out.startswith("gpu_hpi: ") and "of 3,000 pairs" in out.splitlines()[0]
    log = (run / "gpu_hpi.log").read_text()
    assert "][gpu_hpi][INFO] - backend cpu" in log and "reader synthetic" in log


def test_cluster_options_are_typed() -> None:
    app = _validated(_compose([]))
    assert app.cluster.timeout == 10.0 and app.cluster.tls_ca_file is None
    overrides = ["cluster.address=tls://scheduler:8786", "cluster.timeout=2.5", "cluster.tls_ca_file=ca.pem"]
    app = _validated(_compose([*overrides, "cluster.tls_cert=client.pem", "cluster.tls_key=client-key.pem"]))
    assert (app.cluster.timeout, app.cluster.tls_cert, app.cluster.tls_key) == (2.5, "client.pem", "client-key.pem")
    with pytest.raises((HydraException, OmegaConfBaseException)):
        _compose(["cluster.timeout=soon"])


@pytest.mark.parametrize(
    "overrides",
    [[], ["data=transactions", "data.path=s.csv", "data.columns.property=[a,b]", "method=case_shiller"]],
)
def test_the_plain_record_of_a_config_is_omegaconfs(overrides: list[str]) -> None:
    """config.plain, the run record's form of the configuration, is OmegaConf's own conversion."""
    from omegaconf import OmegaConf

    from gpu_hpi.config import plain

    app = OmegaConf.to_object(_compose(overrides))
    assert plain(app) == OmegaConf.to_container(OmegaConf.structured(app), enum_to_str=True)
