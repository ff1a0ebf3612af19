"""Period columns (io/periods.py): timestamps that cannot be calendar dates are refused with the
column, the range found and the likely unit mix-up, by every reader, before any conversion (no
lookup table over the wrapped int32 range: memory stays proportional to the rows), and from the
parquet footers' statistics before any read."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import stamps, write

from gpu_hpi.data.pair_filters import PairingRules
from gpu_hpi.errors import DataError
from gpu_hpi.io.pairs import PairSource
from gpu_hpi.io.periods import check_footer_dates, column_periods, footer_days
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


def test_footer_statistics_refuse_before_reading(tmp_path: Path) -> None:
    ns = stamps("ns").astype(np.int64)
    bad = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))
    path = write(tmp_path / "bad.parquet", pa.table({"d": bad, "x": np.ones(len(ns))}), row_group_size=500)
    with pytest.raises(DataError, match=r"column 'd'.*finer.*nanoseconds stored as milliseconds"):
        check_footer_dates([str(path)], ["d"])
    good = write(tmp_path / "good.parquet", pa.table({"d": pa.array(stamps("ms")), "x": np.ones(len(ns))}))
    values = stamps("ms").astype("datetime64[D]").astype(np.int64)
    assert footer_days([str(good)], "d") == (int(values.min()), int(values.max()))
    check_footer_dates([str(good)], ["d"])
    no_stats = write(tmp_path / "no-stats.parquet", pa.table({"d": bad}), write_statistics=False)
    assert footer_days([str(no_stats)], "d") is None  # the readers check the values instead
    check_footer_dates([str(no_stats)], ["d"])
    empty = write(tmp_path / "empty.parquet", pa.table({"d": pa.array([], pa.timestamp("ms"))}))
    assert footer_days([str(good), str(empty)], "d") == footer_days([str(good)], "d")  # an empty part
    nulls = pa.table({"d": pa.array([None, None], pa.timestamp("ms"))})
    assert footer_days([str(write(tmp_path / "nulls.parquet", nulls))], "d") is None
    assert footer_days([str(good), str(tmp_path / "nulls.parquet")], "d") == footer_days([str(good)], "d")


@pytest.mark.parametrize("stored", ["parquet", "csv-dates"])
def test_seconds_stored_as_milliseconds_are_refused_unless_the_window_is_given(tmp_path: Path, stored: str) -> None:
    """Dates that all land in the first weeks of 1970 (1.7e9 seconds read as milliseconds: 20
    days) built a 1970 index without a word; now one line asks, and data.start says they are meant."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from helpers import run_app

    rng = np.random.default_rng(4)
    seconds = np.sort(rng.integers(1_400_000_000, 1_700_000_000, 400))
    stamps = pa.array(seconds, pa.int64()).cast(pa.timestamp("ms"))  # seconds under a milliseconds type
    prop = rng.integers(0, 60, 400)
    table = pa.table({"property_id": prop, "date": stamps, "price": rng.uniform(1, 2, 400)})
    path = tmp_path / "sales.parquet"
    pq.write_table(table, path)
    if stored == "csv-dates":
        path = tmp_path / "sales.csv"
        table.to_pandas().to_csv(path, index=False)
    common = ["data=transactions", f"data.path={path}", "data.columns.group=null", "index.min_pairs=1"]
    run = run_app(tmp_path, *common, name="refused")
    assert run.rc == 2 and "first weeks of 1970" in run.stderr and run.stderr.count("\n") == 1
    meant = run_app(tmp_path, *common, "data.start=1970-01", "index.periodicity=week", name="meant")
    assert "first weeks of 1970" not in meant.stderr
