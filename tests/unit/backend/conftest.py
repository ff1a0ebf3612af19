"""CUDA's runtime stood in for (tests/fake_cuda.py), without CuPy."""

from __future__ import annotations

import sys
import types

import pytest
from fake_cuda import runtime_stand_in

from gpu_hpi.backend import cuda


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """backend/cuda.py on the stand-in runtime of one H200, CuPy not imported."""
    stand_in = runtime_stand_in()
    monkeypatch.setattr(cuda, "_runtime", lambda: stand_in)
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    return stand_in
