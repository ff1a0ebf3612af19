"""pipeline.run in-process (hydra.compose, no subprocess): the stages it reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import compose_config

from gpu_hpi import config as C
from gpu_hpi.__main__ import process_age
from gpu_hpi.app import pipeline


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    C.register_configs()


def test_startup_is_the_first_stage_reported(tmp_path: Path) -> None:
    cfg = compose_config("data.n_pairs=20000", "output.plot=false", "backend=cpu")
    summary = pipeline.run(cfg, tmp_path, startup_s=1.25)
    stages = summary["timings_s"]
    assert next(iter(stages)) == "startup" and stages["startup"] == 1.25
    assert {"read_and_table", "solve", "diagnostics", "write"} <= set(stages)
    assert json.loads((tmp_path / "summary.json").read_text())["timings_s"]["startup"] == 1.25
    assert "startup" not in pipeline.run(cfg, tmp_path / "again")["timings_s"]


def test_process_age_counts_from_the_process_start() -> None:
    first = process_age()
    second = process_age()
    assert first is not None and second is not None and 0.0 < first <= second
