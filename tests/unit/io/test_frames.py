"""io/frames.py: a frame's batches are of data.batch_rows rows, whatever its own chunks, and hold
its rows in order."""

from __future__ import annotations

import pyarrow as pa
import pytest

from gpu_hpi.errors import DataError
from gpu_hpi.io.frames import frame_batches


def test_small_chunks_are_joined_into_batches_of_batch_rows() -> None:
    chunks = [pa.table({"a": list(range(k, k + 7)), "b": [0.5] * 7, "c": ["x"] * 7}) for k in range(0, 70, 7)]
    frame = pa.concat_tables(chunks)  # 10 chunks of 7 rows
    batches = list(frame_batches(frame, ["b", "a"], 30))
    assert [b.num_rows for b in batches] == [30, 30, 10]
    assert all(b.schema.names == ["b", "a"] for b in batches)
    assert pa.Table.from_batches(batches).column("a").to_pylist() == list(range(70))


def test_an_empty_frame_has_no_batch_and_a_missing_column_is_refused() -> None:
    assert list(frame_batches(pa.table({"a": pa.array([], pa.int64())}), ["a"], 8)) == []
    with pytest.raises(DataError, match="'z' not found"):
        list(frame_batches(pa.table({"a": [1]}), ["a", "z"], 8))
