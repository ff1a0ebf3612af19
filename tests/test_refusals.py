"""Option values refused before any work, in one line (issue 15), through pipeline.run in-process."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from gpu_hpi import config as C
from gpu_hpi import pipeline
from gpu_hpi.backend import check_memory_sizes
from gpu_hpi.errors import ConfigError


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    C.register_configs()


def config(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=C.config_dir(), version_base=None, job_name="test"):
        return compose(config_name="config", overrides=["data.n_pairs=20000", "output.plot=false", *overrides])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("index.min_pairs=-5", "index.min_pairs must be at least 1"),
        ("index.min_pairs=0", "index.min_pairs must be at least 1"),
        ("output.plot_groups=-1", "output.plot_groups must be 0 or more"),
        ("memory.maximum_pool_size=banana", "memory.maximum_pool_size: cannot read memory size 'banana'"),
        ("memory.initial_pool_size=12XB", "memory.initial_pool_size: unknown unit"),
    ],
)
def test_refused_before_reading(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        pipeline.run(config("backend=cpu", override), tmp_path)
    assert "\n" not in str(info.value)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing written


def test_pool_sizes_in_bytes_must_fit_the_maximum() -> None:
    with pytest.raises(ConfigError, match=r"exceeds memory\.maximum_pool_size=1GB"):
        check_memory_sizes("4GB", "1GB")
    check_memory_sizes("1GB", "4GB")
    check_memory_sizes("0.9", "1GB")  # a fraction is checked against the device, where it is known
    check_memory_sizes(None, "1GB")  # RMM's default initial pool is clamped to the maximum there


def test_a_cpu_run_says_nothing_of_memory_settings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gpu_hpi"):
        pipeline.run(config("backend=cpu"), tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "gpu_hpi"]
    assert any(line.startswith("backend cpu") for line in lines)
    assert not any("memory" in line for line in lines)
