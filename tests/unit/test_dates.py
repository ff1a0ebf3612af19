"""Timestamps that cannot be calendar dates (issue 13): refused with the column, the range found and
the likely unit mix-up, by every reader, before any conversion (no lookup table over the wrapped
int32 range: memory stays proportional to the rows)."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpu_hpi.data.pairing import PairingRules
from gpu_hpi.errors import DataError
from gpu_hpi.io.pairs import PairSource
from gpu_hpi.io.periods import column_periods
from gpu_hpi.io.sales import SaleSource
from gpu_hpi.io.sql import Unsupported
from gpu_hpi.io.sql_pairs import sql_cell_table
from gpu_hpi.io.sql_sales import sql_sales

N = 200_000
COLUMNS = {"group": "region", "prev": "d0", "recent": "d1", "y": "y"}


def nanoseconds_as(unit: str, n: int = N) -> pa.Array:
    """Month timestamps 2014..2024 whose nanosecond counts are stored under `unit` (a writer's mix-up)."""
    rng = np.random.default_rng(0)
    ns = (np.datetime64("2014-01", "M") + rng.integers(0, 120, n)).astype("datetime64[ns]").astype(np.int64)
    return pa.array(ns, pa.int64()).cast(pa.timestamp(unit))


@pytest.mark.parametrize("unit", ["ms", "us", "s"])
def test_column_periods_refuses_a_unit_mix_up(unit: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match=r"column 'contract_date'.*(finer|unit)") as info:
        column_periods(nanoseconds_as(unit), "contract_date", "month")
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 < 200 * 2**20
    assert "\n" not in str(info.value)


def test_plausible_dates_still_read_and_old_ones_too() -> None:
    days = np.array(["1850-03-31", "1969-12-31", "1970-01-01", "2024-02-29", "2199-12-01"], dtype="datetime64[D]")
    got = column_periods(pa.array(days.astype("datetime64[ms]")), "d", "month")
    want = days.astype("datetime64[M]").astype(np.int64) + 1970 * 12
    np.testing.assert_array_equal(got, want)
    with pytest.raises(DataError, match="1700"):
        column_periods(pa.array(np.array(["1700-01-01"], dtype="datetime64[D]")), "d", "month")


def test_pairs_and_sales_readers_refuse_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stamps = nanoseconds_as("ms")
    pairs = pa.table({"region": rng.integers(0, 5, N), "d0": stamps, "d1": stamps, "y": rng.normal(size=N)})
    path = tmp_path / "pairs.parquet"
    pq.write_table(pairs, path)
    source = PairSource(str(path), "auto", COLUMNS)
    with pytest.raises(DataError, match=r"column 'd0'.*finer"):
        list(source.batches())
    # DuckDB cannot convert these timestamps: its readers leave the file to pyarrow's, which names the unit
    with pytest.raises(Unsupported):  # left to the pyarrow reader, whose message names the mix-up
        sql_cell_table(source, None, None)
    sales = pa.table({"property": rng.integers(0, N // 3, N), "date": stamps, "price": rng.uniform(1, 2, N)})
    pq.write_table(sales, tmp_path / "sales.parquet")
    sale_source = SaleSource(str(tmp_path / "sales.parquet"), "auto", ["property"], "date", "price")
    with pytest.raises(DataError, match="column 'date'"):
        sale_source.read()
    with pytest.raises(Unsupported):
        sql_sales(sale_source, PairingRules(), None, None, keep_pairs=False)


def test_duckdb_readers_refuse_implausible_dates_they_can_read(tmp_path: Path) -> None:
    """Dates DuckDB converts but outside PLAUSIBLE_YEARS: the same message, from the columns' extremes."""
    days = np.array(["1700-01-01", "2014-01-01", "2014-05-01"], dtype="datetime64[D]")
    pairs = pa.table({"region": [1, 1, 1], "d0": days, "d1": days + 60, "y": [0.1, 0.2, 0.3]})
    pq.write_table(pairs, tmp_path / "pairs.parquet")
    with pytest.raises(DataError, match=r"column 'd0' holds dates from 1700-01-01 to 2014-05-01.*coarser"):
        sql_cell_table(PairSource(str(tmp_path / "pairs.parquet"), "auto", COLUMNS), None, None)
    pq.write_table(pa.table({"p": [1, 1, 1], "date": days, "price": [1.0, 2.0, 3.0]}), tmp_path / "sales.parquet")
    with pytest.raises(DataError, match=r"column 'date' holds dates from 1700-01-01"):
        sql_sales(
            SaleSource(str(tmp_path / "sales.parquet"), "auto", ["p"], "date", "price"),
            PairingRules(),
            None,
            None,
            False,
        )
