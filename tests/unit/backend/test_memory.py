"""Device memory (backend/memory.py): memory sizes parsed, the pool's sizes checked and clamped (RMM
and the device stood in for at the import boundary), the budget of a device read."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import SEED_ROLES, SEED_SCHEMA

from gpu_hpi.backend.memory import DEVICE_READ_SHARE, check_memory_sizes, parse_size, read_budget
from gpu_hpi.errors import ConfigError
from gpu_hpi.io.files import decoded_row_bytes

TOTAL = 80 * 2**30 + 12345


@pytest.mark.parametrize(
    "text, expected",
    [
        ("40GB", 40 * 10**9),
        ("40 GB", 40 * 10**9),
        ("40gb", 40 * 10**9),
        ("16GiB", 16 * 2**30),
        ("1.5GB", 1_500_000_000),
        ("512MiB", 512 * 2**20),
        ("1000000", 1_000_000 // 256 * 256),
        (1_000_000, 1_000_000 // 256 * 256),
        ("0.5", (TOTAL // 2) // 256 * 256),
        ("0.8", int(0.8 * TOTAL) // 256 * 256),
        ("1.0", TOTAL // 256 * 256),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    size = parse_size(text, TOTAL)
    assert size == expected
    assert size % 256 == 0 and size > 0


def test_parse_size_rounds_down_to_256() -> None:
    assert parse_size("1000", TOTAL) == 768
    assert parse_size("1kB", TOTAL) == 768
    assert parse_size("0.5", 1000) == 256
    assert parse_size("40GB", TOTAL) % 256 == 0


@pytest.mark.parametrize("text", ["", "abc", "GB", "40XB", "40 G B B", "-1GB", "0", "0GB", "-0.5", "1e", "0.0"])
def test_parse_size_rejects_bad_strings(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text, TOTAL)


def test_parse_size_never_returns_zero() -> None:
    try:
        size = parse_size("100", TOTAL)
    except ConfigError:
        return
    assert size > 0


def test_pool_sizes_in_bytes_must_fit_the_maximum() -> None:
    with pytest.raises(ConfigError, match=r"exceeds memory\.maximum_pool_size=1GB"):
        check_memory_sizes("4GB", "1GB")
    check_memory_sizes("1GB", "4GB")
    check_memory_sizes("0.9", "1GB")  # a fraction is checked against the device, where it is known
    check_memory_sizes(None, "1GB")  # RMM's default initial pool is clamped to the maximum there


def test_rmm_pool_sizes_are_clamped_not_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A maximum pool below RMM's default initial pool (half the free memory), which crashed RMM on an
    H200, and an initial pool above the maximum: clamped, with a note. RMM and the device are
    stand-ins at the import boundary (no GPU here); configure_memory's logic is the real one."""
    import sys
    import types

    from gpu_hpi.backend.core import Backend
    from gpu_hpi.backend.memory import configure_memory

    calls: list[dict[str, Any]] = []

    class CudaMemoryResource:
        pass

    rmm = types.ModuleType("rmm")
    rmm.mr = types.SimpleNamespace(  # type: ignore[attr-defined]
        CudaMemoryResource=CudaMemoryResource, get_current_device_resource=CudaMemoryResource
    )
    rmm.reinitialize = lambda **kw: calls.append(kw)  # type: ignore[attr-defined]
    statistics = types.ModuleType("rmm.statistics")
    statistics.enable_statistics = lambda: None  # type: ignore[attr-defined]
    allocators = types.ModuleType("rmm.allocators")
    cupy_allocator = types.ModuleType("rmm.allocators.cupy")
    cupy_allocator.rmm_cupy_allocator = object()  # type: ignore[attr-defined]
    rmm.statistics, rmm.allocators, allocators.cupy = statistics, allocators, cupy_allocator  # type: ignore[attr-defined]
    for name, module in {
        "rmm": rmm,
        "rmm.statistics": statistics,
        "rmm.allocators": allocators,
        "rmm.allocators.cupy": cupy_allocator,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    from gpu_hpi.backend import cuda

    gib = 1 << 30
    monkeypatch.setattr(cuda, "memory_info", lambda: (140 * gib, 141 * gib))
    allocators_set: list[object] = []
    xp = types.SimpleNamespace(cuda=types.SimpleNamespace(set_allocator=allocators_set.append))
    monkeypatch.setattr(cuda, "_before_first_use", [])
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    gpu = Backend("gpu", xp, xp, xp, "a stand-in device")  # type: ignore[arg-type]

    note = configure_memory(gpu, pool=True, initial_pool_size=None, maximum_pool_size="1GB", managed_memory=False)
    assert calls[-1]["initial_pool_size"] == calls[-1]["maximum_pool_size"] == 10**9 // 256 * 256
    assert "clamped" not in note  # RMM's own default, made to fit: nothing the user set was changed
    note = configure_memory(gpu, pool=True, initial_pool_size="0.5", maximum_pool_size="1GB", managed_memory=False)
    assert calls[-1]["initial_pool_size"] == calls[-1]["maximum_pool_size"] and "clamped to the maximum 1GB" in note
    configure_memory(gpu, pool=True, initial_pool_size="2GB", maximum_pool_size=None, managed_memory=False)
    assert calls[-1]["initial_pool_size"] == 2 * 10**9 and calls[-1]["maximum_pool_size"] is None
    # CuPy is routed through RMM once it is used, not imported for it
    assert not allocators_set
    monkeypatch.setitem(sys.modules, "cupy", xp)
    assert cuda.cupy_module() is xp
    assert allocators_set == [cupy_allocator.rmm_cupy_allocator] * 3


def test_read_budget_is_a_share_of_the_device_capped_by_the_pool() -> None:
    h200 = 150 * 10**9
    assert read_budget(h200) == int(h200 * DEVICE_READ_SHARE)
    assert read_budget(h200, "8GB") == 2 * 10**9
    assert read_budget(h200, "0.5") == int(h200 * DEVICE_READ_SHARE)  # half the device: the share is smaller
    # 150M seed-schema pairs (44 bytes a row decoded and derived) fit in one read on an H200
    assert read_budget(h200) // decoded_row_bytes(SEED_SCHEMA, SEED_ROLES) > 150_000_000
    with pytest.raises(ConfigError, match="memory size"):
        read_budget(h200, "banana")
