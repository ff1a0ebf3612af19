"""Option values refused before any work, in one line (issue 15), through pipeline.run in-process."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from helpers import compose_config, noisy_short_precise_long

from gpu_hpi import config as C
from gpu_hpi.app import pipeline
from gpu_hpi.backend.memory import check_memory_sizes
from gpu_hpi.errors import ConfigError, DataError


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    C.register_configs()


def config(*overrides: str) -> Any:
    synthetic = [] if "data=pairs" in overrides else ["data.n_pairs=20000"]
    return compose_config(*synthetic, "output.plot=false", *overrides)


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


def write_pairs(path: Path, prev: list[str], recent: list[str], group: list[int]) -> Path:
    import numpy as np
    import pandas as pd

    n = len(prev)
    frame = pd.DataFrame(
        {
            "group_id": group,
            "PrevYearMonth": pd.to_datetime(prev),
            "RecentYearMonth": pd.to_datetime(recent),
            "LogPriceDiff": np.linspace(0.01, 0.1, n),
        }
    )
    frame.to_parquet(path, index=False)
    return path


def test_no_usable_pair_is_an_error_with_the_counts(tmp_path: Path) -> None:
    path = write_pairs(
        tmp_path / "p.parquet", ["2014-01-05"] * 4 + ["2014-05-01"], ["2014-02-20"] * 4 + ["2014-01-01"], [1] * 5
    )
    cfg = config("backend=cpu", "data=pairs", f"data.path={path}", "index.periodicity=quarter")
    with pytest.raises(
        DataError, match=r"none of the input's pairs is usable \(dropped: same_period 4, prev_not_before_recent 1\)"
    ):
        pipeline.run(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()


def test_no_index_off_the_base_period_is_an_error(tmp_path: Path) -> None:
    # every pair between 2014-03 and later: nothing links the first period (the base) to them
    path = write_pairs(tmp_path / "p.parquet", ["2014-03-01"] * 3, ["2014-05-01"] * 3, [1] * 3)
    cfg = config("backend=cpu", "data=pairs", f"data.path={path}", "data.start=2014-01", "index.min_pairs=1")
    with pytest.raises(DataError, match="no index could be estimated: 3 pairs in the cell table, no period linked"):
        pipeline.run(cfg, tmp_path / "out")


def test_regions_all_skipped_report_the_pooled_index_pairs(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "All-NaN slice" leaking out
        warnings.simplefilter("ignore", UserWarning)
        summary = pipeline.run(config("backend=cpu", "data.n_pairs=1000"), tmp_path)
    assert summary["n_groups"] == 17 and len(summary["skipped_groups"]) == 17
    assert summary["n_pairs_used"] == 0 and summary["n_pairs_used_pooled"] == 1000
    assert "max_abs_error_vs_true_log_index" not in summary


def test_warnings_are_one_line() -> None:
    from gpu_hpi.__main__ import _one_line_warning

    text = _one_line_warning(UserWarning("3 groups skipped: a, b\nmore detail"), UserWarning, "file.py", 12)
    assert text == "gpu_hpi: warning: 3 groups skipped: a, b\n"


def test_rmm_pool_sizes_are_clamped_not_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A maximum pool below RMM's default initial pool (half the free memory), the #15 crash on the
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


def test_zero_weight_pairs_counted_once(tmp_path: Path) -> None:
    """Case-Shiller's weight-0 pairs are reported as dropped, and still read once: n_pairs_read is
    the file's rows, n_pairs_used what the regions' fit kept."""
    import numpy as np
    import pandas as pd

    prev, recent, y = noisy_short_precise_long()
    month = np.datetime64("2014-01", "M")
    frame = pd.DataFrame(
        {
            "group_id": 1,
            "PrevYearMonth": (month + prev).astype("datetime64[ns]"),
            "RecentYearMonth": (month + recent).astype("datetime64[ns]"),
            "LogPriceDiff": y,
        }
    )
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    cfg = config(
        "backend=cpu", "data=pairs", f"data.path={tmp_path / 'p.parquet'}", "method=case_shiller", "index.min_pairs=1"
    )
    with pytest.warns(UserWarning, match="zero_weight"):
        summary = pipeline.run(cfg, tmp_path / "out")
    lost = summary["dropped"]["zero_weight"]
    assert lost > 0 and summary["n_pairs_read"] == len(frame)
    assert summary["n_pairs_used"] == len(frame) - lost


def test_forecast_error_for_a_pair_method_says_why(tmp_path: Path) -> None:
    cfg = config("backend=cpu", "method=robust", "diagnostics.forecast_error=true", "diagnostics.revision=false")
    summary = pipeline.run(cfg, tmp_path)
    assert summary["diagnostics"]["accuracy_forecast"].startswith("not available for method=robust")
    assert "revision" not in summary["diagnostics"]


def test_refusals_keep_their_cause_for_debug(tmp_path: Path) -> None:
    """The one-line error hides the library's exception, but keeps it as the cause: debug=true
    re-raises with the whole chain."""
    from gpu_hpi.io.files import parquet_file

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match="cannot read") as read:
        parquet_file(str(bad))
    assert read.value.__cause__ is not None
    with pytest.raises(ConfigError, match="cannot read memory size") as size:
        check_memory_sizes("lots", None)
    assert isinstance(size.value.__cause__.__cause__, ValueError)  # through the sized option's own error
    cfg = config("data=pairs", f"data.path={bad}", "debug=true")
    with pytest.raises(DataError) as run:
        pipeline.run(cfg, tmp_path / "out")
    assert run.value.__cause__ is not None


@pytest.mark.parametrize("kind", ["pairs", "transactions"])
def test_implausible_dates_are_refused_before_the_run_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The command line's job checks the parquet footers first (app/preflight.py): nanoseconds
    stored as milliseconds end the run in one line, exit 2, before pipeline.run (and its imports,
    and a GPU's warm-up) are reached."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from helpers import in_process

    from gpu_hpi import __main__ as app

    ns = (np.datetime64("2014-01", "M") + np.arange(500) % 100).astype("datetime64[ns]").astype(np.int64)
    stamps = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))
    path = tmp_path / "bad.parquet"
    table = {"p": np.arange(500) % 40, "d": stamps, "d2": stamps, "x": np.ones(500)}
    pq.write_table(pa.table(table), path)
    columns = {
        "pairs": [
            "data=pairs",
            "data.columns.prev=d",
            "data.columns.recent=d2",
            "data.columns.y=x",
            "data.columns.group=null",
        ],
        "transactions": ["data=transactions", "data.columns.property=p", "data.columns.date=d", "data.columns.price=x"],
    }[kind]
    cfg = compose_config(*columns, f"data.path={path}", "backend=cpu")

    def not_reached(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pipeline.run was reached")

    monkeypatch.setattr(pipeline, "run", not_reached)
    rc, _, err = in_process(lambda: app.run_job(cfg, tmp_path / "out", command_line=True), cwd=tmp_path)
    assert rc == 2
    assert err.count("gpu_hpi: error:") == 1 and "nanoseconds stored as milliseconds" in err
    with pytest.raises(DataError, match="finer"):  # and pipeline.run itself refuses it too
        monkeypatch.undo()
        pipeline.run(cfg, tmp_path / "out2")
