"""The reader plan (app/plan.py): one reader for every input, backend and fit, each a row of the
architecture note's table; a DuckDB reader that declines a column leaves the input to the reader
the plan names, and summary.json says which one read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_app

import gpu_hpi
from gpu_hpi.app.plan import Reader, plan_reading

DOCS = Path(gpu_hpi.__file__).resolve().parent.parent / "docs" / "architecture.md"


@pytest.mark.parametrize(
    ("kind", "fmt", "gpu", "device", "clustered", "keep", "reader", "fallback"),
    [
        ("synthetic", None, False, False, False, False, Reader.SYNTHETIC, None),
        ("synthetic", None, True, True, False, True, Reader.SYNTHETIC, None),
        ("pairs", "parquet", False, False, False, False, Reader.DUCKDB_TABLE, Reader.ARROW_BATCHES),
        ("pairs", "parquet", False, False, False, True, Reader.DUCKDB_PAIRS, Reader.ARROW_BATCHES),
        ("pairs", "csv", False, False, False, False, Reader.ARROW_BATCHES, None),
        ("pairs", "parquet", True, True, False, False, Reader.DEVICE_PAIRS, None),
        ("pairs", "parquet", True, False, False, False, Reader.ARROW_BATCHES, None),
        ("pairs", "csv", True, True, False, False, Reader.ARROW_BATCHES, None),
        ("pairs", "parquet", False, False, True, False, Reader.DASK, None),
        ("pairs", "parquet", True, True, True, True, Reader.DASK, None),
        ("transactions", "parquet", False, False, False, False, Reader.DUCKDB_SALES, Reader.ARRAY_SALES),
        ("transactions", "parquet", True, True, False, False, Reader.DEVICE_SALES, None),
        ("transactions", "parquet", True, False, False, False, Reader.ARRAY_SALES, None),
        ("transactions", "csv", False, False, False, True, Reader.ARRAY_SALES, None),
        ("cells", None, True, True, False, False, Reader.STORED_CELLS, None),
        ("pairs", "frame", False, False, False, False, Reader.FRAME_BATCHES, None),
        ("pairs", "frame", False, False, False, True, Reader.FRAME_BATCHES, None),
        ("pairs", "frame", True, True, False, False, Reader.FRAME_BATCHES, None),
        ("transactions", "frame", False, False, False, False, Reader.ARRAY_SALES, None),
        ("transactions", "device_frame", True, True, False, False, Reader.DEVICE_SALES, None),
        ("pairs", "device_frame", True, True, False, True, Reader.DEVICE_PAIRS, None),
    ],
)
def test_one_reader_for_each_case(
    kind: str,
    fmt: str | None,
    gpu: bool,
    device: bool,
    clustered: bool,
    keep: bool,
    reader: Reader,
    fallback: Reader | None,
) -> None:
    plan = plan_reading(kind, fmt, "gpu" if gpu else "cpu", device, clustered, keep)
    assert (plan.reader, plan.fallback) == (reader, fallback) and plan.why


def test_every_reader_is_a_row_of_the_architecture_notes_table() -> None:
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| `")]
    named = {line.split("`")[1] for line in rows}
    assert {r.value for r in Reader} <= named


def pairs_file(path: Path, zoned: bool = False) -> Path:
    rng = np.random.default_rng(3)
    n = 3000
    prev = rng.integers(0, 30, n)
    months = np.datetime64("2014-01", "M")
    stamps = [(months + p).astype("datetime64[ns]") for p in (prev, prev + rng.integers(1, 12, n))]
    frame = pd.DataFrame(
        {"group_id": rng.integers(0, 3, n), "PrevYearMonth": stamps[0], "RecentYearMonth": stamps[1]}
    ).assign(LogPriceDiff=rng.normal(0.01, 0.1, n))
    if zoned:
        for name in ("PrevYearMonth", "RecentYearMonth"):
            frame[name] = frame[name].dt.tz_localize("UTC")
    frame.to_parquet(path, index=False)
    return path


def test_the_summary_names_the_reader_and_a_declined_input_is_read_by_the_fallback(tmp_path: Path) -> None:
    plain = pairs_file(tmp_path / "pairs.parquet")
    zoned = pairs_file(tmp_path / "zoned.parquet", zoned=True)
    runs = {
        name: run_app(tmp_path, "data=pairs", f"data.path={path}", "backend=cpu", name=name).ok()
        for name, path in (("plain", plain), ("zoned", zoned))
    }
    assert runs["plain"].summary["reader"] == "duckdb_table"
    assert runs["zoned"].summary["reader"] == "arrow_batches"  # DuckDB leaves zoned timestamps to pyarrow
    np.testing.assert_allclose(runs["zoned"].frame["log_index"], runs["plain"].frame["log_index"], atol=1e-12)
