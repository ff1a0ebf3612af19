"""The warm-up of a GPU run (backend/warmup.py): the CUDA context created and the run's imports loaded,
and nothing at all without a device (the runtime stood in for: tests/fake_cuda.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fake_cuda import Status, runtime_stand_in

from gpu_hpi.backend import cuda


@pytest.mark.parametrize("arrays", [False, True])
def test_the_warm_up_creates_the_context_and_imports_what_the_run_uses(
    runtime: Any, monkeypatch: pytest.MonkeyPatch, arrays: bool
) -> None:
    from gpu_hpi.backend import warmup

    imported: list[str] = []
    monkeypatch.setattr(warmup, "_load", imported.append)
    monkeypatch.setenv("GPU_HPI_CUDF", "1")
    warmup._warm_up(arrays)
    assert runtime.calls == ["free"]  # the context, nothing allocated
    assert imported == (["pylibcudf", "cupy"] if arrays else ["pylibcudf"])


def test_the_warm_up_ends_quietly_without_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_hpi.backend import warmup

    imported: list[str] = []
    monkeypatch.setattr(cuda, "_runtime", lambda: runtime_stand_in(status=Status.cudaErrorNoDevice))
    monkeypatch.setattr(warmup, "_load", imported.append)
    warmup._warm_up(True)
    assert imported == []
