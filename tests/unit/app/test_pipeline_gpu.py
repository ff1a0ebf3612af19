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
    ["pairs", "pairs-robust", "pairs-accuracy", "pairs-blank", "sales", "sales-filters", "sales-robust", "sales-blank"],
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
    # periods and dates as text, some blank: missing, as nulls are (the device reader's masks too)
    text = seed_pairs(6000, 4).to_pandas()
    for column in ("PrevYearMonth", "RecentYearMonth"):
        text[column] = text[column].dt.strftime("%Y-%m").where(text[column].notna(), None)
    text.loc[::97, "RecentYearMonth"] = " "
    blank_pairs = write(tmp_path / "blank.parquet", pa.Table.from_pandas(text, preserve_index=False))
    dated = df.assign(date=df["date"].dt.strftime("%Y-%m-%d").where(df["date"].notna(), None))
    dated.loc[::50, "date"] = ""
    blank_sales = write(
        tmp_path / "blank_sales.parquet",
        pa.Table.from_pandas(dated[["a", "b", "date", "price", "group"]], preserve_index=False),
    )
    on_blank = [
        "data=transactions",
        f"data.path={blank_sales}",
        "data.columns.property=[a,b]",
        "data.columns.group=group",
    ]
    overrides = {
        "pairs": ["data=pairs", f"data.path={pairs}"],
        "pairs-robust": ["data=pairs", f"data.path={pairs}", "method=robust"],
        "pairs-accuracy": ["data=pairs", f"data.path={pairs}", "diagnostics.accuracy_folds=3", "data.start=2014-02"],
        "sales": on_sales,
        "sales-filters": [*on_sales, "data.max_holding=30", "data.max_annual_return=1.0", "data.max_robust_z=3"],
        "sales-robust": [*on_sales, "method=robust", "data.start=2014-03"],
        "pairs-blank": ["data=pairs", f"data.path={blank_pairs}"],
        "sales-blank": on_blank,
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


class CudfFrame:
    """What gpu_hpi asks of a cudf DataFrame, over a pyarrow Table and the stand-in's columns: its
    columns, length, Series.to_pylibcudf (a view on the device), head(0).to_arrow() (the Arrow
    types) and to_arrow() (cudf's copy to the host, for a CPU run)."""

    __module__ = "cudf.core.dataframe"

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.copied_to_host = False

    @property
    def columns(self) -> list[str]:
        return self.table.column_names

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, name: str) -> Any:
        import fake_pylibcudf as fake

        column = fake.Column(self.table.column(name).combine_chunks())
        return type("Series", (), {"to_pylibcudf": lambda self: (column, {})})()

    def head(self, n: int) -> CudfFrame:
        return CudfFrame(self.table.slice(0, n))

    def to_arrow(self) -> pa.Table:
        self.copied_to_host = True
        return self.table


@pytest.mark.parametrize("method", ["bmn", "robust"])
def test_a_cudf_frame_is_read_on_the_device(stand_in_gpu: None, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """index_from_pairs of a cudf frame with backend=gpu: its columns read by the device reader in
    row ranges (views; a budget of ~1,000 rows a read here), never copied to the host whole; the
    index and drop counts of the same pairs read on the CPU, where a cudf frame goes through Arrow."""
    import gpu_hpi
    from gpu_hpi.app import load_pairs

    pairs = seed_pairs(6000, 5)
    # the earlier sales at 05:00 in Seoul on their month's first day: the month before in UTC, which
    # the device's column holds (libcudf's timestamps have no zone): the frame's Arrow types tell
    instants = pairs.column(1).to_numpy() - np.timedelta64(9 - 5, "h")
    seoul = pa.array(instants, pa.timestamp("ns", tz="Asia/Seoul"), from_pandas=True)
    zoned = pairs.set_column(1, "PrevYearMonth", seoul)
    monkeypatch.setattr(load_pairs, "device_read_budget", lambda backend, maximum=None: 1000 * 60)
    reads: list[int] = []
    slice_rows = device.Ops.slice
    monkeypatch.setattr(device.Ops, "slice", lambda ops, cols, a, b: reads.append(b - a) or slice_rows(ops, cols, a, b))
    frame = CudfFrame(zoned)
    got = gpu_hpi.index_from_pairs(frame, backend="gpu", method=method)
    assert got.summary["reader"] == "device_pairs" and not frame.copied_to_host
    assert sum(reads) == 6000 and len(reads) > 4
    host = CudfFrame(zoned)
    want = gpu_hpi.index_from_pairs(host, backend="cpu", method=method)
    assert want.summary["reader"] == "frame_batches" and host.copied_to_host
    np.testing.assert_allclose(got.log_index, want.log_index, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.se, want.se, rtol=1e-8)
    assert got.dropped == want.dropped and got.dropped  # seed_pairs' null periods and y
    np.testing.assert_allclose(got.log_index, gpu_hpi.index_from_pairs(pairs, method=method).log_index, atol=1e-10)


def test_a_cudf_frame_of_sale_records_is_paired_on_the_device(stand_in_gpu: None) -> None:
    """index_from_sales of a cudf frame with backend=gpu: read and paired by the device reader where
    the frame is, never copied to the host; the index and drop counts of the same sales on the CPU."""
    import gpu_hpi

    sales = pa.Table.from_pandas(random_sales(61)[["a", "b", "date", "price", "group"]], preserve_index=False)
    options = {"property": ["a", "b"], "date": "date", "price": "price", "group": "group", "max_holding": 40}
    frame = CudfFrame(sales)
    got = gpu_hpi.index_from_sales(frame, backend="gpu", **options)
    assert got.summary["reader"] == "device_sales" and not frame.copied_to_host
    want = gpu_hpi.index_from_sales(sales, backend="cpu", **options)
    assert want.summary["reader"] == "array_sales"
    np.testing.assert_allclose(got.log_index, want.log_index, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.se, want.se, rtol=1e-8)
    assert got.dropped == want.dropped and got.dropped.get("holding_too_long")
    assert got.summary["n_pairs_made"] == want.summary["n_pairs_made"]
