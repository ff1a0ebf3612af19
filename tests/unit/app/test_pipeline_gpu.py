"""The job's GPU branch run on the CPU: backend=gpu with numpy arrays as the device's and the
stand-in of pylibcudf (tests/fake_pylibcudf.py) as libcudf, set up by the `stand_in_gpu` fixture of
tests/conftest.py. tests/gpu/ runs the same branch on a device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fake_pylibcudf import no_array
from helpers import seed_pairs, write
from sales_reference import random_sales

from gpu_hpi.io import device


@pytest.mark.parametrize(
    "job",
    ["pairs", "pairs-robust", "pairs-accuracy", "sales", "sales-filters", "sales-robust"],
)
def test_the_gpu_job_on_the_stand_in_equals_the_cpu_job(stand_in_gpu: None, tmp_path: Path, job: str) -> None:
    """pipeline.run on backend=gpu (the device readers, tables summed on the host, the pairs kept on
    the device for the methods that need them) gives backend=cpu's index and drop counts."""
    from helpers import run_app

    pairs = write(tmp_path / "pairs.parquet", seed_pairs(6000, 4), row_group_size=1500)
    df = random_sales(53)
    sales = write(
        tmp_path / "sales.parquet", pa.Table.from_pandas(df[["a", "b", "date", "price", "group"]], preserve_index=False)
    )
    on_sales = ["data=transactions", f"data.path={sales}", "data.columns.property=[a,b]", "data.columns.group=group"]
    overrides = {
        "pairs": ["data=pairs", f"data.path={pairs}"],
        "pairs-robust": ["data=pairs", f"data.path={pairs}", "method=robust"],
        "pairs-accuracy": ["data=pairs", f"data.path={pairs}", "diagnostics.accuracy_folds=3", "data.start=2014-02"],
        "sales": on_sales,
        "sales-filters": [*on_sales, "data.max_holding=30", "data.max_annual_return=1.0", "data.max_robust_z=3"],
        "sales-robust": [*on_sales, "method=robust", "data.start=2014-03"],
    }[job]
    runs = {b: run_app(tmp_path, *overrides, f"backend={b}", name=f"{job}-{b}").ok() for b in ("gpu", "cpu")}
    got, want = (runs[b].frame for b in ("gpu", "cpu"))
    np.testing.assert_allclose(got["log_index"], want["log_index"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["se"], want["se"], rtol=1e-8, atol=1e-12)
    summaries = {b: runs[b].summary for b in ("gpu", "cpu")}
    assert summaries["gpu"]["dropped"] == summaries["cpu"]["dropped"]
    assert summaries["gpu"]["backend"] == "gpu" and summaries["cpu"]["backend"] == "cpu"


def test_a_table_only_gpu_job_makes_no_array(
    stand_in_gpu: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair file reduced to its cell table and fitted from it (bmn, as by default) is libcudf's
    work alone: no device column is viewed as an array and the GPU backend's array namespace is
    never asked for, so CuPy is not imported (1.1 s of start-up)."""
    from helpers import run_app

    from gpu_hpi.backend.core import Backend

    def no_namespace(backend: Backend) -> Any:
        if backend.is_gpu:
            raise AssertionError("the GPU's array namespace was used")
        return np

    pairs = write(tmp_path / "pairs.parquet", seed_pairs(6000, 4), row_group_size=1500)
    want = run_app(tmp_path, "data=pairs", f"data.path={pairs}", "backend=cpu", name="cpu").ok()
    monkeypatch.setattr(device, "device_array", no_array)
    monkeypatch.setattr(Backend, "xp", property(no_namespace))
    got = run_app(tmp_path, "data=pairs", f"data.path={pairs}", "backend=gpu", name="gpu").ok()
    np.testing.assert_allclose(got.frame["log_index"], want.frame["log_index"], rtol=0, atol=1e-10)
    assert got.summary["dropped"] == want.summary["dropped"] and got.summary["backend"] == "gpu"
