"""`python -m gpu_hpi` (__main__.py): a run composes its configuration once and records what
Hydra's own entry point records; a warning is one line, the process's age is the start-up's."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import in_process, main_in_process
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.types import RunMode
from omegaconf import OmegaConf

from gpu_hpi.__main__ import process_age


def test_a_run_composes_once_and_records_what_hydras_entry_point_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run takes the composition that checked its overrides (it was composed three times: that
    check, then Hydra's check of the mode and its run). Hydra's own entry point (`@hydra.main`,
    which the command line keeps for Hydra's flags) composes twice; both leave the same .hydra/
    files but for the run directory."""
    from gpu_hpi import __main__ as app
    from gpu_hpi.config import config_dir

    composed: list[Any] = []
    compose = ConfigLoaderImpl.load_configuration

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        composed.append(kwargs.get("run_mode"))
        return compose(self, *args, **kwargs)

    def hydras_entry_point(args: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["gpu_hpi", f"--config-dir={config_dir()}", *args])
        return in_process(app._app, tmp_path)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    lean = ["data.n_pairs=3000", "output.plot=false", "diagnostics.revision=false", "method=case_shiller"]
    saved = {}
    for name, entry in (("ours", lambda a: main_in_process(a, tmp_path)), ("hydras", hydras_entry_point)):
        composed.clear()
        code, _, err = entry([*lean, f"hydra.run.dir={tmp_path / name}"])
        assert code == 0, err
        assert composed == ([RunMode.RUN] if name == "ours" else [RunMode.MULTIRUN, RunMode.RUN])
        files = {f: OmegaConf.load(tmp_path / name / ".hydra" / f) for f in ("config.yaml", "hydra.yaml")}
        files["overrides.yaml"] = OmegaConf.load(tmp_path / name / ".hydra" / "overrides.yaml")
        saved[name] = OmegaConf.to_yaml(OmegaConf.create(files)).replace(str(tmp_path / name), "RUN_DIR")
        assert (tmp_path / name / "summary.json").is_file() and not (tmp_path / name / ".gpu_hpi.lock").exists()
    assert saved["ours"] == saved["hydras"]
    assert OmegaConf.load(tmp_path / "ours" / ".hydra" / "hydra.yaml").hydra.mode == "RUN"


@pytest.mark.parametrize("mode", [[], ["hydra.mode=RUN"]])
def test_a_run_is_refused_in_one_line_before_it_writes(tmp_path: Path, mode: list[str]) -> None:
    """With or without its own hydra.mode=RUN: an override that does not compose, a ${hydra:...} or
    a missing key in the run directory, a run directory another run holds."""
    from gpu_hpi.app.command import own_run_dir

    def refusal(*args: str) -> str:
        code, out, err = main_in_process([*args, *mode], tmp_path)
        assert code == 2 and out == "" and len(err.splitlines()) == 1, (code, out, err)
        return err

    assert "method/nosuch" in refusal("method=nosuch", f"hydra.run.dir={tmp_path / 'a'}")
    assert "'nosuch' not found: hydra.run.dir" in refusal(f"hydra.run.dir={tmp_path}/${{nosuch}}")
    # in the job's values too (a traceback in the run before); ${hydra.x} does not resolve in the run
    assert "'nope' not found: index.base_period" in refusal("index.base_period=${nope}")
    assert "'hydra.runtime.cwd' not found: data.path" in refusal("data=pairs", "data.path=${hydra.runtime.cwd}/p.csv")
    assert "no such option: method.huber" in refusal("+method.huber=2")  # read by nothing before
    assert "hydra.run.dir is empty" in refusal("hydra.run.dir=")  # the working directory before
    assert "-m method=bmn,robust" in refusal("method=[bmn,robust]")  # Hydra merged the two: robust alone ran
    # .hydra/ overwritten by a refused run, or an earlier .hydra/ left beside a new set, before
    for subdir in ("null", ".hydra"):
        assert "hydra.output_subdir is where a run stages" in refusal(f"hydra.output_subdir={subdir}")
    held = tmp_path / "held"
    lock = own_run_dir(held)
    try:
        assert f"pid {os.getpid()}" in refusal("data.n_pairs=3000", f"hydra.run.dir={held}")
    finally:
        lock.close()
    assert list(held.iterdir()) == [held / ".gpu_hpi.lock"]  # nothing of the refused run
    lean = ["data.n_pairs=3000", "output.plot=false", "diagnostics.revision=false", "method=robust"]
    code, _, err = main_in_process(
        [*lean, f"hydra.run.dir={tmp_path}/${{hydra:runtime.choices.method}}", *mode], tmp_path
    )
    assert code == 0 and (tmp_path / "robust" / "summary.json").is_file(), err


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


def test_the_collector_is_held_for_the_start_up_only_in_the_command_lines_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cli() turns the garbage collector off for the start-up and the run turns it back on, the
    start-up's objects frozen; main() called in another process leaves its collector alone."""
    import gc

    from gpu_hpi import __main__ as app

    args = ["data.n_pairs=2000", "output.plot=false", "diagnostics.revision=false"]
    frozen = gc.get_freeze_count()
    rc, _, err = main_in_process([f"hydra.run.dir={tmp_path / 'caller'}", *args], cwd=tmp_path)
    assert rc == 0, err
    # nothing frozen (objects an earlier run in this process froze may have died meanwhile)
    assert gc.isenabled() and gc.get_freeze_count() <= frozen

    monkeypatch.setattr(app, "_collector_held", True)
    gc.disable()
    try:
        rc, _, err = main_in_process([f"hydra.run.dir={tmp_path / 'own'}", *args], cwd=tmp_path)
        assert rc == 0, err
        assert gc.isenabled() and gc.get_freeze_count() > frozen and not app._collector_held
    finally:
        gc.enable()
    # a refusal ends the process before the run: the collector stays off until it exits
    monkeypatch.setattr(app, "_collector_held", True)
    gc.disable()
    try:
        rc, _, _ = main_in_process([f"hydra.run.dir={tmp_path / 'refused'}", "method=nosuch"], cwd=tmp_path)
        assert rc == 2 and not gc.isenabled()
    finally:
        gc.enable()
