"""`python -m gpu_hpi` (__main__.py): a run composes its configuration once and records what
Hydra's own entry point records; a warning is one line, the process's age is the start-up's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import main_in_process
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.types import RunMode
from omegaconf import OmegaConf

from gpu_hpi.__main__ import process_age


def test_a_run_composes_once_and_records_what_hydras_entry_point_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run takes the composition that checked its overrides (it was composed three times: that
    check, then Hydra's check of the mode and its run). A hydra.mode of one's own goes through
    Hydra's entry point, which composes twice; both leave the same .hydra/ files but for the run
    directory."""
    composed: list[Any] = []
    compose = ConfigLoaderImpl.load_configuration

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        composed.append(kwargs.get("run_mode"))
        return compose(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    lean = ["data.n_pairs=3000", "output.plot=false", "diagnostics.revision=false", "method=case_shiller"]
    saved = {}
    for name, mode in (("ours", []), ("hydras", ["hydra.mode=RUN"])):
        composed.clear()
        code, _, err = main_in_process([*lean, f"hydra.run.dir={tmp_path / name}", *mode], tmp_path)
        assert code == 0, err
        assert composed == ([RunMode.RUN] if name == "ours" else [RunMode.MULTIRUN, RunMode.RUN])
        files = {f: OmegaConf.load(tmp_path / name / ".hydra" / f) for f in ("config.yaml", "hydra.yaml")}
        files["overrides.yaml"] = OmegaConf.load(tmp_path / name / ".hydra" / "overrides.yaml")
        saved[name] = OmegaConf.to_yaml(OmegaConf.create(files)).replace(str(tmp_path / name), "RUN_DIR")
        assert (tmp_path / name / "summary.json").is_file() and not (tmp_path / name / ".gpu_hpi.lock").exists()
    assert saved["ours"] == saved["hydras"]
    assert OmegaConf.load(tmp_path / "ours" / ".hydra" / "hydra.yaml").hydra.mode == "RUN"


def test_warnings_are_one_line() -> None:
    from gpu_hpi.__main__ import _one_line_warning

    text = _one_line_warning(UserWarning("3 groups skipped: a, b\nmore detail"), UserWarning, "file.py", 12)
    assert text == "gpu_hpi: warning: 3 groups skipped: a, b\n"


def test_process_age_counts_from_the_process_start() -> None:
    first = process_age()
    second = process_age()
    assert first is not None and second is not None and 0.0 < first <= second


def test_exit_status_is_the_interpreters(capsys: pytest.CaptureFixture[str]) -> None:
    from gpu_hpi.__main__ import exit_status

    assert [exit_status(SystemExit(code)) for code in (None, 0, 2, 130)] == [0, 0, 2, 130]
    assert capsys.readouterr().err == ""
    assert exit_status(SystemExit("gpu_hpi: a message")) == 1
    assert capsys.readouterr().err == "gpu_hpi: a message\n"
