"""The command line's run (`python -m gpu_hpi overrides`), composed once: Hydra's application object
as `@hydra.main` builds it composes the overrides, a bad one refused in one line; the run directory
they name is resolved, checked writable and owned by this process through an exclusive lock before
Hydra writes anything there; then Hydra's run takes that composition rather than composing twice
more (its check of the mode and its run: ~0.08 s each). Light: the run's own modules are imported
by the task, after all this."""

from __future__ import annotations

import dataclasses
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException

from ..config import config_dir
from ..errors import ConfigError, DataError, GpuHpiError

LOCK = ".gpu_hpi.lock"  # in the run directory while a run owns it


def one_line(exc: BaseException) -> str:
    """A single line out of Hydra's / OmegaConf's multi-line messages."""
    if isinstance(exc, MissingConfigException):
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        head = lines[0].split(": ", 1)[-1]
        options = [ln for ln in lines[2:] if not ln.startswith(("Config search path", "provider="))]
        available = [ln for ln in options if "Available" not in ln]
        return f"{head} (available: {', '.join(available)})" if available else head
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    first = str(exc).splitlines()[0].rstrip(".")
    key = getattr(exc, "full_key", None) if isinstance(exc, OmegaConfBaseException) else None
    if key:  # the message names the value's key (not always its path)
        head, _, detail = first.partition(": ")
        first = f"{head}: {key}" if "raised while resolving" not in head else f"{key}: {detail or head}"
    return f"{first}: {str(cause).splitlines()[0]}" if cause else first


def run_once(task: Callable[[DictConfig], None], args: list[str], refuse: Callable[[str], NoReturn]) -> None:
    """Hydra's run of `task` on these overrides, as its entry point runs it, from one composition,
    in a run directory this process owns until the run ends. Overrides that do not compose, and a
    run directory that cannot be written or is another run's, are refused (`refuse(one line)`)
    before anything is written."""
    from hydra._internal.utils import run_and_report
    from hydra.core.global_hydra import GlobalHydra

    # as Hydra's entry point adds it to a run's overrides where they set no mode
    overrides = args if mode_of(args) else [*args, "hydra.mode=RUN"]
    application = _application(task)
    try:
        try:
            cfg = _compose(application, overrides)
            if not str(cfg.hydra.run.dir).strip():  # Hydra would write into the working directory
                raise ConfigError("hydra.run.dir is empty: name the run's directory (. for this one)")
            run_dir = Path(str(cfg.hydra.run.dir)).absolute()
            from .preflight import CONFIG_FOLDERS, check_run_files  # pyarrow: once the overrides compose

            check_run_files(cfg, run_dir, [LOCK, f"{cfg.hydra.job.name}.log"], list(CONFIG_FOLDERS))
            lock = own_run_dir(run_dir)
        except OmegaConfBaseException as exc:
            refuse(one_line(exc))
        except GpuHpiError as exc:
            refuse(str(exc))
        try:
            with read_write(cfg.hydra.run):  # resolved once: a ${now:...} would move on
                cfg.hydra.run.dir = str(run_dir).replace("${", "\\${")
            application.config_loader = _Composed(application.config_loader, overrides, cfg)
            run_and_report(lambda: application.run(config_name="config", task_function=task, overrides=overrides))
        finally:
            release_run_dir(lock)
    finally:
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()


def mode_of(args: list[str]) -> str | None:
    """The hydra.mode these overrides set (RUN, MULTIRUN; a wrong one refused when composed), or None."""
    modes = [a.split("=", 1)[1].strip().upper() for a in args if a.lstrip("+").startswith("hydra.mode=")]
    return modes[-1] if modes else None


def check_choices(overrides: list[str]) -> None:
    """ConfigError for a list given as a group's choice (method=[bmn,case_shiller]): Hydra merges
    the listed configs into one, the last winning, where a user meant several runs (-m method=bmn,case_shiller)."""
    groups = {d.name for d in Path(config_dir()).iterdir() if d.is_dir()}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in groups and value.strip().startswith("["):
            choices = value.strip()[1:-1]
            raise ConfigError(f"{override}: one {key} per run; for a run of each: python -m gpu_hpi -m {key}={choices}")


def _compose(application: Any, overrides: list[str]) -> DictConfig:
    """The configuration of these overrides with Hydra's own, composed by Hydra's application object
    as its run would compose it, every value present; ConfigError (one line) if they do not compose."""
    check_choices(overrides)
    try:
        cfg = application.compose_config(config_name="config", overrides=overrides, run_mode=RunMode.RUN)
        HydraConfig.instance().set_config(cfg)  # a ${hydra:...} in a value resolves as in the run
        check_values(cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(one_line(exc)) from exc
    return cfg


def check_values(cfg: DictConfig, *, missing: bool = False) -> None:
    """Every value of the job's configuration (Hydra's own aside) present and resolved: a ??? or an
    interpolation that does not resolve is refused with the overrides, not met as a traceback in
    the run, which gets the job's part alone (so ${hydra.x} does not resolve there; ${hydra:x} does).
    ConfigError (one line) where one is not, or a key the schema does not declare is set; missing=True
    lets a ??? be (a value the caller sets later)."""
    body = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    try:
        OmegaConf.to_container(body, resolve=True, throw_on_missing=not missing)
    except (OmegaConfBaseException, ValueError) as exc:  # a resolver's own error too
        raise ConfigError(one_line(exc)) from exc
    data = _fields(cfg.data) if "data" in cfg else None
    if data and "kind" in data and cfg.data.kind != data["kind"].default:  # the readers go by the group's type
        raise ConfigError(f"data.kind={cfg.data.kind}: the kind of input is chosen as data={cfg.data.kind}, not set")
    unknown = [key for key in _unknown_keys(cfg, "") if key != "hydra"]
    if unknown:  # added with + or ++ (the schema refuses them without): no stage would read them
        raise ConfigError(f"no such option: {', '.join(unknown)} (`python -m gpu_hpi --help` lists them)")


def _unknown_keys(node: DictConfig, path: str) -> Iterator[str]:
    """The dotted keys of `node` that the schema's dataclasses do not declare."""
    declared = _fields(node)
    for key in map(str, node):
        child = node._get_node(key)
        if declared is not None and key not in declared:
            yield f"{path}{key}"
        elif isinstance(child, DictConfig) and key != "hydra":
            yield from _unknown_keys(child, f"{path}{key}.")


def _fields(node: DictConfig) -> dict[str, Any] | None:
    """The fields of the schema's dataclass a node was made from, by name; None for a plain node."""
    kind = OmegaConf.get_type(node)
    return {f.name: f for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else None


def _application(task: Callable[[DictConfig], None]) -> Any:
    """Hydra's application object as `@hydra.main` makes it for this task with conf/ as its
    --config-dir: the same search path and job name, so the same composition."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
    )
    from hydra.core.config_search_path import SearchPathQuery

    calling_file, calling_module = detect_calling_file_or_module_from_task_function(task)
    search_path = create_automatic_config_search_path(calling_file, calling_module, None)
    conf = f"file://{os.path.abspath(config_dir())}"
    search_path.prepend(provider="command-line", path=conf, anchor=SearchPathQuery(provider="schema"))
    task_name = detect_task_name(calling_file, calling_module)
    return Hydra.create_main_hydra2(task_name=task_name, config_search_path=search_path)


class _Composed:
    """Hydra's config loader, but for the run's composition, which is the one run_once made (and
    pinned the run directory in): Hydra's run takes it as its own."""

    def __init__(self, loader: Any, overrides: list[str], cfg: DictConfig) -> None:
        self._loader, self._overrides = loader, overrides
        self._cfg: DictConfig | None = cfg

    def load_configuration(self, config_name: str | None, overrides: list[str], run_mode: RunMode, **kw: Any) -> Any:
        cfg, self._cfg = self._cfg, None
        if cfg is not None and run_mode == RunMode.RUN and list(overrides) == self._overrides:
            return cfg
        return self._loader.load_configuration(config_name, overrides, run_mode, **kw)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_loader", "_overrides", "_cfg"):
            raise AttributeError(name)
        return getattr(self._loader, name)


def own_run_dir(run_dir: Path) -> IO[str]:
    """Create the run directory and take its lock for this process (held while the returned file
    stays open); DataError naming the other run if one holds it."""
    problem = run_dir_problem(run_dir)
    if problem:
        raise DataError(problem)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = open(run_dir / LOCK, "a+")  # noqa: SIM115 (held until the run ends)
    except OSError as exc:
        raise DataError(f"cannot write the output directory {run_dir}: {exc.strerror}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock.seek(0)
        other = lock.read().strip() or "unknown"
        lock.close()
        raise DataError(
            f"the output directory {run_dir} is in use by another run (pid {other}); "
            "wait for it or choose another hydra.run.dir"
        ) from exc
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


# the locks of sweep jobs' directories, taken by the sweeper before Hydra stages a job's configuration
# there and handed to the job's run (take_job_dir), which releases it when it ends
_job_dirs: dict[str, IO[str]] = {}


def hold_job_dir(run_dir: Path) -> None:
    """A sweep job's directory owned (own_run_dir) until its run takes the lock over."""
    _job_dirs[os.path.realpath(run_dir)] = own_run_dir(run_dir)


def take_job_dir(run_dir: Path) -> IO[str] | None:
    """The lock hold_job_dir took for this directory, now the caller's to release; None if none."""
    return _job_dirs.pop(os.path.realpath(run_dir), None)


def release_run_dir(lock: IO[str]) -> None:
    """The directory free again: the lock file goes, then the lock."""
    Path(lock.name).unlink(missing_ok=True)
    lock.close()


def run_dir_problem(run_dir: Path) -> str | None:
    """Why the run directory cannot be created or written to, or None."""
    from .preflight import unwritable_folder  # pyarrow: once the overrides compose

    if run_dir.exists() and not run_dir.is_dir():
        return f"the output directory {run_dir} is a file"
    blocked = unwritable_folder(run_dir)
    return f"cannot write the output directory {run_dir}: {blocked}" if blocked else None
