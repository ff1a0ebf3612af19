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


def noisy_short_precise_long(seed: int = 21, n: int = 4000, t: int = 40) -> tuple[Any, Any, Any]:
    """(prev, recent, y) of pairs whose short holdings are noisy and long ones precise: Case-Shiller's
    linear stage-2 variance turns negative past some holding length (weight-0 pairs)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    prev = rng.integers(0, t - 1, n)
    hold = np.where(rng.random(n) < 0.5, rng.integers(1, 4, n), rng.integers(20, 39, n))
    recent = np.minimum(prev + hold, t - 1)
    keep = recent > prev
    prev, recent = prev[keep], recent[keep]
    h = recent - prev
    truth = np.cumsum(rng.normal(0.01, 0.02, t))
    y = truth[recent] - truth[prev] + rng.normal(0, 1, len(h)) * np.where(h < 5, 0.3, 0.01)
    return prev, recent, y
