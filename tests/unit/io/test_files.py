"""Files (io/files.py): which row groups to read together within a budget (pure functions, tested on
the CPU), and the decoded size of a row."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from helpers import SEED_ROLES, SEED_SCHEMA

from gpu_hpi.io.files import DERIVED_ROW_BYTES, decoded_row_bytes, plan_reads


@pytest.mark.parametrize(
    "rows, max_rows, want",
    [
        ([100] * 5, 1000, [[0, 1, 2, 3, 4]]),  # the whole file in one read
        ([100] * 5, 250, [[0, 1], [2, 3], [4]]),
        ([100, 300, 100, 100], 250, [[0], [1], [2, 3]]),  # a row group above the limit reads alone
        ([100] * 3, 100, [[0], [1], [2]]),
        ([], 100, []),
    ],
)
def test_plan_reads_sets_of_consecutive_row_groups(rows: list[int], max_rows: int, want: list[list[int]]) -> None:
    assert plan_reads(rows, max_rows) == want


def test_plan_reads_covers_every_row_group_once_within_the_limit() -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(1, 5000, 300).tolist()
    for max_rows in (1, 999, 4999, 20_000, 10**9):
        plan = plan_reads(rows, max_rows)
        assert [k for s in plan for k in s] == list(range(len(rows)))
        for s in plan:
            assert len(s) == 1 or sum(rows[k] for k in s) <= max_rows
        for a, b in itertools.pairwise(plan):  # no two neighbours could have been one read
            assert sum(rows[k] for k in a + b) > max_rows


def test_decoded_row_bytes_of_the_seed_schema() -> None:
    assert decoded_row_bytes(SEED_SCHEMA, SEED_ROLES) == 4 * 8 + DERIVED_ROW_BYTES
    assert decoded_row_bytes(SEED_SCHEMA, {"group": "name", "y": "LogPriceDiff"}) == 32 + 8 + DERIVED_ROW_BYTES
    assert decoded_row_bytes(SEED_SCHEMA, {"group": "code"}) == 2 + DERIVED_ROW_BYTES


def test_the_format_is_told_by_content_not_by_name(tmp_path: Path) -> None:
    """A parquet file named .txt was read as CSV (binary bytes in the message); the content tells."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpu_hpi.errors import DataError
    from gpu_hpi.io.files import input_files

    table = pa.table({"a": [1, 2]})
    named_txt = tmp_path / "pairs.txt"
    pq.write_table(table, named_txt)
    assert input_files(str(named_txt)) == ([str(named_txt)], "parquet")
    with pytest.raises(DataError, match=r"is a parquet file: data\.format=csv does not fit it"):
        input_files(str(named_txt), "csv")
    csv = tmp_path / "pairs.csv"
    csv.write_text("a\n1\n")
    assert input_files(str(csv)) == ([str(csv)], "csv")
    other = tmp_path / "pairs.xlsx"
    other.write_bytes(b"PK\x03\x04 not a table")
    with pytest.raises(DataError, match=r"not parquet, nor named \.csv; set data\.format=csv"):
        input_files(str(other))
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(table, folder / "a.parquet")
    (folder / "b.parquet").write_text("a\n1\n")  # a damaged parquet file: left to its reader
    assert input_files(str(folder))[1] == "parquet"
