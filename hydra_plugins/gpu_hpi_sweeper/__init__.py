"""gpu_hpi's Hydra sweeper: Hydra's basic sweeper, each job's configuration composed once.

Hydra's sweeper composes every job of a batch to refuse a bad one before any runs, then its
launcher composes each job again as it starts it (~0.1 s a job): the second composition serves
launchers that run jobs in other processes. The jobs of `python -m gpu_hpi -m` run in this
process, one after another, so the launcher here takes the configuration the sweeper composed,
and with it each job's directory lock is taken, before Hydra writes in that directory.
"""

# no `from __future__ import annotations`: Hydra runs this module without registering it in
# sys.modules, where a dataclass looks its string annotations up
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict


@dataclass
class ComposeOnceSweeperConf:
    _target_: str = "hydra_plugins.gpu_hpi_sweeper.ComposeOnceSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="compose_once", node=ComposeOnceSweeperConf)


class ComposeOnceSweeper(BasicSweeper):
    """BasicSweeper whose launcher gets the configurations its validation composed."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.loader = ComposedOnce(hydra_context.config_loader)
        loader: Any = self.loader  # a ConfigLoader by delegation
        context = replace(hydra_context, config_loader=loader)
        super().setup(hydra_context=context, task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch: Any) -> None:
        self.loader.validating = True  # its compositions are kept for the launcher, one a job
        try:
            super().validate_batch_is_legal(batch)
        finally:
            self.loader.validating = False


class ComposedOnce:
    """A config loader that keeps each job's composed configuration from its first composition
    (the sweeper's check of the batch, while `validating`) for its second (the launcher's), which
    takes it: each configuration goes to one job, in order (a batch may repeat a job's overrides),
    and the job then sets its own job number in it."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._kept: dict[tuple[str, ...], list[DictConfig]] = {}
        self._launched = 0
        self.validating = False

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = tuple(sweep_overrides)
        kept = None if self.validating or not self._kept.get(key) else self._kept[key].pop(0)
        composed = kept if kept is not None else self._loader.load_sweep_config(master_config, sweep_overrides)
        if self.validating:
            self._kept.setdefault(key, []).append(composed)
        else:  # the launcher's call, just before Hydra stages the job in its directory
            self._hold_job_dir(composed)
        return composed

    def _hold_job_dir(self, cfg: DictConfig) -> None:
        """The job's directory owned now, as a single run's is before Hydra writes there (a sweep and a
        run into one directory mixed their sets and configurations); its run takes the lock over.
        The launcher numbers its jobs 0, 1, ... across batches, as counted here."""
        from gpu_hpi.app.command import hold_job_dir
        from gpu_hpi.errors import GpuHpiError

        if OmegaConf.select(cfg, "hydra.sweep.dir") is None:  # no directory named: nothing to hold
            return
        with open_dict(cfg):
            cfg.hydra.job.num = cfg.hydra.job.id = self._launched
        self._launched += 1
        try:
            hold_job_dir(Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir))
        except GpuHpiError as exc:  # one line and exit 2, as the command line's refusals
            print(f"gpu_hpi: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_loader", "_kept", "_launched", "validating"):  # unpickling
            raise AttributeError(name)
        return getattr(self._loader, name)
