"""Every refusal of docs/refusals.md's kinds leaves the run's inputs as they were: the SHA-256 of
every file in the inputs' folder is the same before and after, each case refused in one line
(exit 2) with nothing committed."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import q, run_app, seed_pairs
from sales_reference import random_sales, write_sales


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of inputs: pairs (parquet, CSV), sale records, a stored table and a damaged copy,
    and files a run must refuse."""
    folder = tmp_path_factory.mktemp("inputs")
    pairs = seed_pairs(4000, 13, nulls=False)
    pq.write_table(pairs, folder / "pairs.parquet")
    frame = pairs.to_pandas()
    frame.to_csv(folder / "pairs.csv", index=False)
    write_sales(folder, random_sales(3), ["a", "b", "c"], name="sales.parquet")
    history = run_app(folder, "data=pairs", f"data.path={folder / 'pairs.parquet'}", "output.cells=true", name="h")
    shutil.copy(history.ok().dir / "cells.parquet", folder / "cells.parquet")
    shutil.rmtree(history.dir)
    stored = pq.read_table(folder / "cells.parquet")
    sums = stored.column("sum_y").to_numpy().copy()
    sums[2] = np.nan
    pq.write_table(
        stored.set_column(stored.schema.get_field_index("sum_y"), "sum_y", pa.array(sums)), folder / "damaged.parquet"
    )
    months = frame.assign(PrevYearMonth="2015-13", RecentYearMonth="2016-02")
    months.to_csv(folder / "month13.csv", index=False)
    frame.assign(group_id=["ALL" if g == 3 else f"r{g}" for g in frame["group_id"]]).to_csv(
        folder / "region_all.csv", index=False
    )
    (folder / "part_without_y").mkdir()
    pq.write_table(pairs.slice(0, 2000), folder / "part_without_y" / "a.parquet")
    pq.write_table(pairs.slice(2000).drop_columns(["LogPriceDiff"]), folder / "part_without_y" / "b.parquet")
    listed = pairs.set_column(0, "group_id", pa.array([[g] for g in pairs.column(0).to_pylist()]))
    pq.write_table(listed, folder / "listed_groups.parquet")
    random_sales(3).iloc[:0].to_csv(folder / "no_sales.csv", index=False)
    as_months = {c: frame[c].dt.strftime("%Y-%m") for c in ("PrevYearMonth", "RecentYearMonth")}
    frame.assign(**as_months).to_csv(folder / "months.csv", index=False)
    as_yyyymm = {c: frame[c].dt.year * 100 + frame[c].dt.month for c in ("PrevYearMonth", "RecentYearMonth")}
    frame.assign(**as_yyyymm).to_parquet(folder / "yyyymm.parquet", index=False)
    (folder / "mixed_types").mkdir()
    frame.iloc[:2000].assign(**as_months).to_parquet(folder / "mixed_types" / "a.parquet", index=False)
    pq.write_table(pairs.slice(2000), folder / "mixed_types" / "b.parquet")
    twice = frame.assign(extra=0.0)
    twice.columns = [*frame.columns, "LogPriceDiff"]  # the log ratio's name twice
    twice.to_csv(folder / "twice.csv", index=False)
    early = pairs.set_column(1, "PrevYearMonth", pa.array(np.full(4000, 1_500_000, "datetime64[ms]")))
    early = early.set_column(2, "RecentYearMonth", pa.array(np.full(4000, 1_600_000, "datetime64[ms]")))
    pq.write_table(early, folder / "seconds_as_ms.parquet")
    return folder


CASES: dict[str, Callable[[Path], list[str]]] = {
    "save_pairs over its input": lambda d: [
        "data=transactions",
        f"data.path={d / 'sales.parquet'}",
        "data.columns.property=[a,b,c]",
        f"data.save_pairs={d / 'sales.parquet'}",
        "data.columns.group=group",
    ],
    "save_pairs not parquet": lambda d: [
        "data=transactions",
        f"data.path={d / 'sales.parquet'}",
        "data.columns.property=[a,b,c]",
        f"data.save_pairs={d / 'pairs.csv'}",
        "data.columns.group=group",
    ],
    "a table added twice": lambda d: ["data=cells", f"data.path=[{q(d / 'cells.parquet')},{q(d / 'cells.parquet')}]"],
    "pairs already in the table": lambda d: [
        "data=pairs",
        f"data.path={d / 'pairs.parquet'}",
        f"data.add_cells={q(d / 'cells.parquet')}",
    ],
    "a damaged table": lambda d: ["data=cells", f"data.path={d / 'damaged.parquet'}"],
    "month 13": lambda d: ["data=pairs", f"data.path={d / 'month13.csv'}"],
    "a column twice": lambda d: ["data=pairs", f"data.path={d / 'twice.csv'}"],
    "seconds as milliseconds": lambda d: ["data=pairs", f"data.path={d / 'seconds_as_ms.parquet'}"],
    "a format that does not fit": lambda d: ["data=pairs", f"data.path={d / 'pairs.parquet'}", "data.format=csv"],
    "a base period of month 00": lambda d: ["data=pairs", f"data.path={d / 'pairs.csv'}", "index.base_period=2015-00"],
    "a missing column": lambda d: ["data=pairs", f"data.path={d / 'pairs.parquet'}", "data.columns.y=nope"],
    "a region named ALL": lambda d: ["data=pairs", f"data.path={d / 'region_all.csv'}"],
    "a folder's file without a column": lambda d: ["data=pairs", f"data.path={d / 'part_without_y'}"],
    "a region column of lists": lambda d: ["data=pairs", f"data.path={d / 'listed_groups.parquet'}"],
    "a CSV of sale records with a header only": lambda d: [
        "data=transactions",
        f"data.path={d / 'no_sales.csv'}",
        "data.columns.property=[a,b,c]",
        "data.columns.group=group",
    ],
    "months as weeks": lambda d: ["data=pairs", f"data.path={d / 'months.csv'}", "index.periodicity=week"],
    "YYYYMM months as weeks": lambda d: [
        "data=pairs",
        f"data.path={d / 'yyyymm.parquet'}",
        "data.integer_periods=yyyymm",
        "index.periodicity=week",
    ],
    "save_pairs into the sale records' folder": lambda d: [
        "data=transactions",
        f"data.path={d}/*.parquet",
        "data.columns.property=[a,b,c]",
        "data.columns.group=group",
        f"data.save_pairs={d / 'pairs_of_sales.parquet'}",
    ],
    "periods as text in one file, dates in another": lambda d: ["data=pairs", f"data.path={d / 'mixed_types'}"],
    "a window of one period": lambda d: [
        "data=transactions",
        f"data.path={d / 'sales.parquet'}",
        "data.columns.property=[a,b,c]",
        "data.columns.group=group",
        "data.start=2015-03-01",
        "data.end=2015-03-31",
    ],
    "one column as y and group": lambda d: [
        "data=pairs",
        f"data.path={d / 'pairs.parquet'}",
        "data.columns.y=group_id",
    ],
    "one CSV column as both periods": lambda d: [
        "data=pairs",
        f"data.path={d / 'pairs.csv'}",
        "data.columns.prev=RecentYearMonth",
    ],
    "no property key": lambda d: [
        "data=transactions",
        f"data.path={d / 'sales.parquet'}",
        "data.columns.property=null",
        "data.columns.group=group",
    ],
}


MESSAGES = {  # each case refused for its own reason
    "save_pairs over its input": "would overwrite the input",
    "save_pairs not parquet": "must name a .parquet file",
    "a table added twice": "again",
    "pairs already in the table": "data.allow_double_count=true",
    "a damaged table": "damaged cell table",
    "month 13": "month must be in 1..12",
    "a column twice": "appears 2 times",
    "seconds as milliseconds": "the first weeks of 1970",
    "a format that does not fit": "does not fit it",
    "a base period of month 00": "month must be in 1..12",
    "a missing column": "not found in",
    "a region named ALL": 'a group is named "ALL", the name of the pooled index',
    # read as nulls before: half the pairs dropped as nonfinite_y, exit 0
    "a folder's file without a column": "column(s) 'LogPriceDiff' not found in",
    "a region column of lists": "the region column (data.columns.group) holds bigint[] values",  # a traceback before
    "a CSV of sale records with a header only": "the input holds no sales",  # a traceback before
    # each month in the week of its first day, three weeks in four empty, exit 0 before
    "months as weeks": "column 'PrevYearMonth' holds months ('20",
    "YYYYMM months as weeks": "holds months ('YYYYMM'): weekly periods need dates",
    # written among the inputs, read as sale records by the next run
    "save_pairs into the sale records' folder": "pairs_of_sales.parquet would be read as input by data.path=",
    # read as one table, the dates became text no period reads as: a message blaming the data
    "periods as text in one file, dates in another": "column 'PrevYearMonth' holds text in",
    # sale records: widened to 2015-03..2015-04 with exit 0 before
    "a window of one period": "data.start=2015-03-01 and data.end=2015-03-31 make a window of 1 period",
    "one column as y and group": "the pair columns must be distinct: 'group_id' is both the group and the y",
    "one CSV column as both periods": "'RecentYearMonth' is both the prev and the recent",
    "no property key": "data.columns.property must name a column or a list of columns, got None",
}


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_a_refusal_leaves_every_input_as_it_was(inputs: Path, tmp_path: Path, case: str) -> None:
    before = digests(inputs)
    run = run_app(tmp_path, *CASES[case](inputs))
    assert run.rc == 2 and run.stderr.startswith("gpu_hpi: error: "), run.stderr
    assert MESSAGES[case] in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1 or "warning" in run.stderr, run.stderr
    assert not (run.dir / "summary.json").exists()
    assert digests(inputs) == before
