"""How the GPU reader plans its reads (pure functions, tested on the CPU): row-group sets within a
device budget, the decoded size of a row, the budget from the device memory and the RMM pool."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from gpu_hpi.backend.core import resolve_backend
from gpu_hpi.backend.memory import DEVICE_READ_SHARE, read_budget
from gpu_hpi.errors import ConfigError
from gpu_hpi.io.files import DERIVED_ROW_BYTES, decoded_row_bytes, plan_reads

SEED_SCHEMA = pa.schema(
    [
        ("group_id", pa.int64()),
        ("PrevYearMonth", pa.timestamp("ns")),
        ("RecentYearMonth", pa.timestamp("ns")),
        ("LogPriceDiff", pa.float64()),
        ("name", pa.string()),
        ("code", pa.dictionary(pa.int32(), pa.int16())),
    ]
)
ROLES = {"group": "group_id", "prev": "PrevYearMonth", "recent": "RecentYearMonth", "y": "LogPriceDiff"}


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
    assert decoded_row_bytes(SEED_SCHEMA, ROLES) == 4 * 8 + DERIVED_ROW_BYTES
    assert decoded_row_bytes(SEED_SCHEMA, {"group": "name", "y": "LogPriceDiff"}) == 32 + 8 + DERIVED_ROW_BYTES
    assert decoded_row_bytes(SEED_SCHEMA, {"group": "code"}) == 2 + DERIVED_ROW_BYTES


def test_read_budget_is_a_share_of_the_device_capped_by_the_pool() -> None:
    h200 = 150 * 10**9
    assert read_budget(h200) == int(h200 * DEVICE_READ_SHARE)
    assert read_budget(h200, "8GB") == 2 * 10**9
    assert read_budget(h200, "0.5") == int(h200 * DEVICE_READ_SHARE)  # half the device: the share is smaller
    # 150M seed-schema pairs (44 bytes a row decoded and derived) fit in one read on an H200
    assert read_budget(h200) // decoded_row_bytes(SEED_SCHEMA, ROLES) > 150_000_000
    with pytest.raises(ConfigError, match="memory size"):
        read_budget(h200, "banana")


def test_asarray_on_the_cpu_is_numpy_without_staging() -> None:
    cpu = resolve_backend("cpu")
    a = np.arange(1 << 18, dtype=np.int64)  # 2 MB: above the pinned threshold, which is GPU only
    assert cpu.asarray(a) is a
    np.testing.assert_array_equal(cpu.asarray(a, dtype=np.float64), a.astype(np.float64))
