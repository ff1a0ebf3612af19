"""Shared test helpers: the app's configuration composed in-process, as `python -m gpu_hpi` would."""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir

from gpu_hpi import config as C


def compose_config(*overrides: str) -> Any:
    """The composed configuration (DictConfig) for these overrides, for pipeline.run in-process."""
    C.register_configs()
    with initialize_config_dir(config_dir=C.config_dir(), version_base=None, job_name="test"):
        return compose(config_name="config", overrides=list(overrides))
