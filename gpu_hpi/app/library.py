"""The command line's job from Python: `run(overrides)` runs a configured job as `python -m gpu_hpi`
does; `index_from_pairs(frame, ...)` and `index_from_sales(frame, ...)` run it on pairs or sale
records in a frame that speaks Arrow (pandas, polars, pyarrow, a DuckDB relation), with the options
named as on the command line. All compose the same configuration (conf/ and config.py): one
declaration of the options, so a keyword here is checked, typed and defaulted as its override is."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import AppConfig, PairsDataConfig, TransactionsDataConfig, config_dir, register_configs
from ..errors import ConfigError, DataError
from ..estimation.result import IndexResult
from .command import check_choices, check_values, one_line, run_dir_problem
from .pipeline import run_job

GROUP_CHOICES = ("method", "solver", "backend", "memory", "cluster")  # conf/ groups chosen by name
PAIR_ROLES = ("group", "prev", "recent", "y", "price_prev", "price_recent")
SALE_ROLES = ("property", "date", "price", "group")
FRAME_PATH = "<frame>"  # data.path of a frame's run: no file is read
# a frame's run returns its result: the files it would write go with its temporary directory
FRAME_OUTPUTS = {"output.csv": False, "output.parquet": False, "output.plot": False, "progress": False}


@dataclass(frozen=True)
class RunResult:
    """A job's index, its summary (summary.json's content) and the directory holding its outputs."""

    index: IndexResult
    summary: dict[str, Any]
    run_dir: Path


def compose(overrides: list[str]) -> DictConfig:
    """The configuration of these command-line overrides, as Hydra's compose makes it (ConfigError
    for one that does not compose). Hydra composes the config groups' choices and then applies the
    other overrides to the result; the composition of the choices (~0.1-0.3 s, most of it) is
    kept per process and copied, the others applied to the copy by Hydra's own function."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    check_choices(list(overrides))
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc
    groups = _groups()

    def composes(o: Any) -> bool:  # as Hydra's defaults list tells a group's choice from a value
        group = o.key_or_group in groups and not isinstance(o.value(), dict)
        return group or o.is_hydra_override() or o.key_or_group.startswith("hydra") or o.is_sweep_override()

    cfg = copy.deepcopy(_composed(tuple(o.input_line for o in parsed if composes(o))))
    OmegaConf.set_readonly(cfg, None)  # None: the flag cleared, as composed
    try:
        ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if not composes(o)], cfg)
        check_values(cfg, missing=True)  # a frame's run sets data.path later
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(one_line(exc)) from exc
    return cfg


@functools.cache
def _groups() -> frozenset[str]:
    """The config groups: conf/'s folders and the schema's groups in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    register_configs()
    root = Path(config_dir())
    found = {str(d.relative_to(root)) for d in root.rglob("*") if d.is_dir()}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, value in node.items():
            if isinstance(value, dict):
                found.add(prefix + name)
                walk(value, f"{prefix}{name}/")

    walk(ConfigStore.instance().repo, "")
    return frozenset(found)


@functools.lru_cache(maxsize=64)
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    register_configs()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base=None, job_name="gpu_hpi"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc
    OmegaConf.set_readonly(cfg, True)  # the cached one: callers get copies
    return cfg


def run(overrides: list[str] | tuple[str, ...] = (), run_dir: str | Path | None = None) -> RunResult:
    """Run the job of these overrides (as `python -m gpu_hpi OVERRIDE...`) in this process, writing
    its outputs into run_dir (None: the overrides' hydra.run.dir, else a new temporary directory, kept)."""
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(
            f"overrides are a list of strings, e.g. ['data=pairs', 'data.path=p.parquet'], got {overrides!r}"
        )
    cfg = compose(list(overrides))
    named = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("hydra.run.dir=")]
    if named and "${" in named[-1]:
        raise ConfigError(f"hydra.run.dir={named[-1]}: an interpolation is the command line's; give run_dir=")
    if named and run_dir is not None and Path(named[-1]).expanduser().resolve() != Path(run_dir).expanduser().resolve():
        raise ConfigError(f"two run directories: run_dir={run_dir} and hydra.run.dir={named[-1]}")
    chosen = run_dir if run_dir is not None else (named[-1] if named else None)
    out = Path(tempfile.mkdtemp(prefix="gpu_hpi-")) if chosen is None else Path(chosen)
    problem = run_dir_problem(out)
    if problem:
        raise DataError(problem)
    result, summary = run_job(cfg, out, command_line=list(overrides))
    return RunResult(dataclasses.replace(result, summary=summary), summary, out)


def option_paths(kind: str = "pairs") -> dict[str, list[str]]:
    """Each option's keyword -> its dotted paths in the configuration of data=kind (several where
    the name is not unique: e.g. tol, of method and of solver)."""
    sections = {f.name: f.type for f in dataclasses.fields(AppConfig)}
    paths: dict[str, list[str]] = {}
    for section, type_ in sections.items():
        data = TransactionsDataConfig if kind == "transactions" else PairsDataConfig
        schema = data if section == "data" else _dataclass(type_)
        if schema is None:
            paths.setdefault(section, []).append(section)
            continue
        for f in dataclasses.fields(schema):
            if section in GROUP_CHOICES and f.name == "name":
                continue  # the group's choice: its own keyword
            if section == "data" and f.name in ("columns", "kind", "path"):
                continue  # the frame's column roles are keywords of their own; it has no path
            paths.setdefault(f.name, []).append(f"{section}.{f.name}")
    for group in GROUP_CHOICES:
        paths[group] = [group]
    return paths


def _dataclass(kind: Any) -> Any:
    import gpu_hpi.config as schema

    found = getattr(schema, kind, None) if isinstance(kind, str) else kind
    return found if dataclasses.is_dataclass(found) else None


def index_from_pairs(frame: Any, **options: Any) -> IndexResult:
    """The index of the pairs in `frame` (pandas, polars, pyarrow, a DuckDB relation: anything that
    speaks Arrow), by the command line's readers' rules, drop counts and refusals.

    Column roles are keywords named as data.columns' (group, prev, recent, y, price_prev,
    price_recent; defaults: the command line's), every other option its command-line name
    (method="case_shiller", base_period="2017-11", min_pairs=20, backend="cpu", ...; a name two
    groups share by its dotted path, e.g. **{"solver.tol": 1e-10}). Returns the IndexResult with
    the run's summary (`.summary`, drop counts in `.dropped`)."""
    return _index_from_frame("pairs", PAIR_ROLES, frame, options)


def index_from_sales(frame: Any, **options: Any) -> IndexResult:
    """The index of the sale records in `frame`, paired per property by the command line's rules
    (data=transactions): column roles property (a name, or a list of names forming the key), date,
    price and group, every other option its command-line name (pairing="all", max_holding=60,
    method="case_shiller", ...). Returns the IndexResult with the run's summary, as index_from_pairs."""
    return _index_from_frame("transactions", SALE_ROLES, frame, options)


def _index_from_frame(kind: str, roles: tuple[str, ...], frame: Any, options: dict[str, Any]) -> IndexResult:
    options = dict(options)
    columns = {role: options.pop(role) for role in roles if role in options}
    choices = [f"{g}={options.pop(g)}" for g in GROUP_CHOICES if g in options]
    cfg = compose([f"data={kind}", *choices])
    values: dict[str, Any] = {f"data.columns.{role}": name for role, name in columns.items()}
    values.update({"data.path": FRAME_PATH, **FRAME_OUTPUTS})
    values.update(_option_values(options, kind))
    for path, value in values.items():
        try:
            OmegaConf.update(cfg, path, value, merge=False)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{path}={value!r}: {str(exc).splitlines()[0]}") from exc
    with tempfile.TemporaryDirectory(prefix="gpu_hpi-") as out:
        result, summary = run_job(cfg, Path(out), frame=frame)  # as Arrow, or a cudf frame on the device
    summary.pop("outputs", None)  # they went with the temporary directory
    return dataclasses.replace(result, summary=summary)


def _option_values(options: dict[str, Any], kind: str) -> dict[str, Any]:
    """Dotted paths and values of keyword options; ConfigError for an unknown or ambiguous name."""
    known = option_paths(kind)
    values: dict[str, Any] = {}
    for name, value in options.items():
        if "." in name:
            values[name] = value
            continue
        paths = known.get(name)
        if not paths:
            close = sorted(k for k in known if name in k or k in name)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown option {name!r}{hint}")
        if len(paths) > 1:
            raise ConfigError(
                f"{name!r} is an option of {' and '.join(paths)}: give its path, e.g. **{{{paths[0]!r}: ...}}"
            )
        values[paths[0]] = value
    return {path: _plain(value) for path, value in values.items()}


def _plain(value: Any) -> Any:
    """A date or time (datetime, pandas' Timestamp, numpy's datetime64) as its day, which the
    period options read; other values as they are."""
    if isinstance(value, np.datetime64):
        return str(value.astype("datetime64[D]"))
    return value.isoformat()[:10] if isinstance(value, datetime.date) else value
