"""Shared fixtures, and the folders' markers: every test under e2e/ is slow, every test under gpu/
needs a GPU (the markers are registered in pyproject.toml)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# One BLAS / OpenMP thread per test process, set before numpy and scipy load their libraries: the
# tests' matrices are small, and the libraries' waiting threads beside pytest-xdist's other worker
# and DuckDB's threads took a third of the suite's CPU time. (Child processes inherit it.)
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

# Bytecode cached as Python does by default, where the environment says not to (PYTHONDONTWRITEBYTECODE,
# as container images set it): otherwise each of the suite's ~80 `python -m gpu_hpi` processes
# compiles gpu_hpi again (0.09 s of its 0.76 s start-up) and each worker's collection rewrites every
# test module again (5.5 s against 3.7 s). Child processes read what this process writes.
sys.dont_write_bytecode = False

# No collector passes while the test modules and the libraries load (they make objects that live
# as long as the process, no garbage): on again, with those objects frozen, once collection ends.
gc.disable()

import numpy as np  # noqa: E402 (after the thread settings)
import pytest  # noqa: E402

# `from reference import ...` in the test modules: pytest's default (prepend) import mode already puts
# this folder on sys.path; keep it working under --import-mode=importlib too.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# reference.py (pandas, hypothesis) is imported by the fixtures that use it, not here: the xdist
# controller, which runs no test, loads this file before it starts its workers
if TYPE_CHECKING:
    from reference import Problem


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture
def problem() -> Problem:
    """Several groups (connected, with empty periods, with two components, too small) and invalid pairs."""
    from reference import random_problem

    return random_problem(np.random.default_rng(7))


@pytest.fixture
def clean_problem() -> Problem:
    """The same shapes of groups without invalid pairs (so integer group ids work)."""
    from reference import random_problem

    return random_problem(np.random.default_rng(8), invalid=False)


@pytest.fixture
def connected() -> Problem:
    """One group, every period identified, no invalid pairs."""
    from reference import connected_problem

    return connected_problem(np.random.default_rng(9))


_FOLDER_MARKERS = {"e2e": pytest.mark.slow, "gpu": pytest.mark.gpu}


def pytest_sessionstart(session: pytest.Session) -> None:
    """pytest-xdist's controller collects nothing (its workers do): the collector on at once."""
    if session.config.pluginmanager.has_plugin("dsession"):
        gc.enable()


def pytest_collection_finish(session: pytest.Session) -> None:
    """The libraries' and test modules' objects, which live as long as the process, moved out of
    the garbage collector's reach (its full passes scanned them again ~15 times a worker), and the
    collector on for the tests."""
    gc.freeze()
    gc.enable()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.path)).resolve().relative_to(_HERE).parts[0]
        if folder in _FOLDER_MARKERS:
            item.add_marker(_FOLDER_MARKERS[folder])


# --------------------------------------------------------------------------------------------------
# fixtures of several folders' tests


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The device reader's operations on the stand-in of pylibcudf (fake_pylibcudf.py), which the
    reader itself loads too; device columns viewed as host arrays."""
    import fake_pylibcudf as fake

    from gpu_hpi.io import device

    monkeypatch.setattr(device, "library", lambda: fake.plc)
    monkeypatch.setattr(device, "device_array", fake.host_array)
    return device.Ops(fake.plc)


@pytest.fixture
def stand_in_gpu(ops: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """backend=gpu runs with numpy arrays as the device's and the stand-in as pylibcudf (the fused
    kernel's bincount reference in place of the kernel; no device memory to size or report)."""
    import scipy.sparse
    import scipy.sparse.linalg

    from gpu_hpi.app import load_pairs, outputs, pipeline
    from gpu_hpi.backend.core import Backend, resolve_backend

    class StandIn(Backend):
        def synchronize(self) -> None:
            pass

    stand_in = StandIn("gpu", np, scipy.sparse, scipy.sparse.linalg, "GPU stand-in (numpy)")

    def resolve(choice: str = "auto") -> Backend:
        return stand_in if choice == "gpu" else resolve_backend(choice)

    monkeypatch.setattr(pipeline, "resolve_backend", resolve)
    monkeypatch.setattr(outputs, "peak_device_bytes", lambda backend: None)
    monkeypatch.setattr(load_pairs, "device_read_budget", lambda backend, maximum=None: 1 << 30)
    monkeypatch.setenv("GPU_HPI_FUSED_KERNEL", "0")


@pytest.fixture(scope="module")
def split() -> Any:
    """stored_cells.py's update scenario (a Split)."""
    from stored_cells import make_split

    return make_split()
