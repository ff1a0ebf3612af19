"""Files (io/files.py): which row groups to read together within a budget (pure functions, tested on
the CPU), and the decoded size of a row."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from helpers import SEED_ROLES, SEED_SCHEMA

from gpu_hpi.errors import DataError
from gpu_hpi.io.files import DERIVED_ROW_BYTES, _csv_codes, decoded_row_bytes, plan_reads, record_batches


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


def test_csv_identifiers_are_read_as_written(tmp_path: Path) -> None:
    """A group or property-key column of a CSV file: text where any code is not a plain integer
    (the guessed type read '01100' as 1100, one region with '1100', and 20-digit codes as rounded
    floats), int64 where every code is one (as before)."""
    codes = tmp_path / "codes.csv"
    codes.write_text("g,x\n01100,1\n1100,2\n001100,3\n12345678901234567801,4\n12345678901234567802,5\n,6\n")
    (batch,) = record_batches([str(codes)], "csv", ["g", "x"], 1000, codes=["g"])
    assert batch.column("g").to_pylist() == [
        "01100",
        "1100",
        "001100",
        *(f"1234567890123456780{i}" for i in (1, 2)),
        None,
    ]
    (guessed,) = record_batches([str(codes)], "csv", ["g", "x"], 1000)  # no identifiers named: the guess
    assert guessed.column("g").type == pa.float64()
    plain = tmp_path / "plain.csv"
    plain.write_text("g,x\n11110,1\n-3,2\n0,3\n,4\n")
    (batch,) = record_batches([str(plain)], "csv", ["g", "x"], 1000, codes=["g", "g"])
    assert batch.column("g").type == pa.int64() and batch.column("g").to_pylist() == [11110, -3, 0, None]


def test_csv_identifiers_keep_the_form_of_the_first_batch() -> None:
    """The first batch with a value decides (as the reader's own type inference does); a later
    batch of another form is refused, not read as other codes."""

    def read(values: list[str | None], seen: dict[str, bool]) -> pa.Array:
        return _csv_codes(pa.record_batch({"g": pa.array(values, pa.string())}), ["g"], seen, "f.csv").column("g")

    seen: dict[str, bool] = {}
    assert read([None], seen).type == pa.string() and read(["7", "8"], seen).to_pylist() == [7, 8]
    with pytest.raises(DataError, match=r"column 'g' of f\.csv holds codes written as integers and others"):
        read(["007"], seen)
    text: dict[str, bool] = {}
    assert read(["007"], text).to_pylist() == ["007"] and read(["7"], text).to_pylist() == ["7"]
    signed: dict[str, bool] = {}
    assert read(["-0", "0"], signed).to_pylist() == ["-0", "0"]  # one number as integers: kept apart as text
