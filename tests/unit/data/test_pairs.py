"""Repeat-sales pairs (data/pairs.py): the inputs prepare_pairs takes (period and y dtypes, pandas
series, every encoding of group ids) give the reference's index; invalid pairs dropped and counted
under the first reason they fail, or refused under strict; bad input refused; group codes aligned to
another table's labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import estimate, reference
from reference import (
    REASONS,
    Problem,
    assert_matches_reference,
    drop_counts,
    random_problem,
    reference_index,
)

import gpu_hpi
from gpu_hpi.data.pairs import align_groups

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = "cpu"


def test_float32_y_matches_reference_of_its_values(problem: Problem) -> None:
    y32 = problem.y.astype(np.float32)
    result = gpu_hpi.estimate_index(
        problem.prev, problem.recent, y32, problem.group_float(), n_periods=problem.n_periods, backend=CPU
    )
    ref = reference_index(
        problem.prev, problem.recent, y32.astype(np.float64), problem.group_float(), n_periods=problem.n_periods
    )
    assert_matches_reference(result, ref)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32])
@pytest.mark.parametrize("solver", ["normal", "lsqr"])
def test_period_dtypes(clean_problem: Problem, dtype: Any, solver: str) -> None:
    p = clean_problem
    want = estimate(p, solver=solver)
    got = gpu_hpi.estimate_index(
        p.prev.astype(dtype),
        p.recent.astype(dtype),
        p.y,
        p.group_float(),
        n_periods=p.n_periods,
        backend=CPU,
        solver=solver,
    )
    np.testing.assert_array_equal(got.log_index, want.log_index)
    np.testing.assert_array_equal(got.period_pairs, want.period_pairs)


def test_uint64_periods(clean_problem: Problem) -> None:
    p = clean_problem
    want = estimate(p)
    got = gpu_hpi.estimate_index(
        p.prev.astype(np.uint64), p.recent.astype(np.uint64), p.y, p.group_float(), n_periods=p.n_periods, backend=CPU
    )
    np.testing.assert_array_equal(got.log_index, want.log_index)


def test_pandas_series_inputs(problem: Problem) -> None:
    frame = pd.DataFrame(
        {"prev": problem.prev, "recent": problem.recent, "y": problem.y, "region": problem.group_float()}
    )
    result = gpu_hpi.estimate_index(
        frame["prev"], frame["recent"], frame["y"], frame["region"], n_periods=problem.n_periods, backend=CPU
    )
    assert_matches_reference(result, reference(problem))


def test_default_n_periods_is_max_recent_plus_one(connected: Problem) -> None:
    p = connected
    result = gpu_hpi.estimate_index(p.prev, p.recent, p.y, backend=CPU)
    assert result.log_index.shape == (1, int(p.recent.max()) + 1)
    np.testing.assert_allclose(result.log_index, estimate(p, group=None).log_index, atol=0, rtol=0)


def _handmade() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Pairs failing each reason, several failing more than one (counted under the first)."""
    nan, inf = np.nan, np.inf
    rows = [
        # prev, recent, y, group
        (0, 1, 0.10, 1.0),  # valid
        (1, 2, 0.20, 1.0),  # valid
        (0, 4, 0.30, 2.0),  # valid
        (0, 2, 0.20, nan),  # missing_group
        (-1, 2, nan, nan),  # missing_group (also out of range, non-finite)
        (3, 3, 0.00, nan),  # missing_group (also prev == recent)
        (-1, 2, 0.10, 1.0),  # period_out_of_range
        (0, 5, 0.10, 1.0),  # period_out_of_range (recent == T)
        (6, 2, nan, 2.0),  # period_out_of_range (also prev > recent, non-finite)
        (3, 3, nan, 1.0),  # same_period (also non-finite)
        (4, 2, 0.10, 2.0),  # prev_not_before_recent
        (1, 3, inf, 1.0),  # nonfinite_y
        (1, 3, -inf, 2.0),  # nonfinite_y
        (2, 3, nan, 2.0),  # nonfinite_y
    ]
    prev, recent, y, group = (np.array(c) for c in zip(*rows, strict=True))
    expected = {
        "missing_group": 3,
        "period_out_of_range": 3,
        "same_period": 1,
        "prev_not_before_recent": 1,
        "nonfinite_y": 3,
    }
    return prev.astype(np.int64), recent.astype(np.int64), y.astype(np.float64), group, expected


def test_drop_counts_per_reason_exact() -> None:
    prev, recent, y, group, expected = _handmade()
    pairs = gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=5, backend=CPU)
    table = gpu_hpi.build_cell_table(pairs, gpu_hpi.resolve_backend(CPU))
    assert table.dropped == expected
    assert list(table.dropped) == list(REASONS)  # reported in the documented order
    assert table.n_pairs == 3
    # the reference counts the same way (so the random-problem comparisons below mean something)
    assert drop_counts(prev, recent, y, group, 5) == expected


def test_drop_counts_without_group_column() -> None:
    prev, recent, y, _, _ = _handmade()
    table = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(prev, recent, y, n_periods=5, backend=CPU), gpu_hpi.resolve_backend(CPU)
    )
    # no group column: nothing is missing, the former missing-group pairs fall to later reasons
    assert table.dropped == {"period_out_of_range": 4, "same_period": 2, "prev_not_before_recent": 1, "nonfinite_y": 3}
    assert table.n_pairs == 4


@pytest.mark.parametrize("seed", [0, 5])
def test_drop_counts_match_reference(seed: int) -> None:
    p = random_problem(np.random.default_rng(seed))
    ref = reference(p)
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, backend=CPU)
    table = gpu_hpi.build_cell_table(pairs, gpu_hpi.resolve_backend(CPU))
    assert table.dropped == ref.dropped
    assert set(table.dropped) == set(REASONS)
    assert table.n_pairs + sum(table.dropped.values()) == p.n_pairs


def test_strict_raises_data_error(problem: Problem) -> None:
    with pytest.raises(gpu_hpi.DataError) as info:
        estimate(problem, strict=True)
    for reason in REASONS:
        assert reason in str(info.value)


def test_strict_passes_clean_data(clean_problem: Problem) -> None:
    strict = estimate(clean_problem, "int", strict=True)
    loose = estimate(clean_problem, "int")
    np.testing.assert_array_equal(strict.log_index, loose.log_index)


def _by_label(result: gpu_hpi.IndexResult, relabel: dict[Any, int]) -> dict[int, np.ndarray]:
    """Rows of a result keyed by the original group id (pooled row under -1)."""
    return {relabel.get(label, -1): result.log_index[k] for k, label in enumerate(result.groups)}


@pytest.mark.parametrize(
    "encoding",
    ["int64", "int32", "uint32", "codes", "float", "str", "categorical", "negative", "large_range", "pandas"],
)
@pytest.mark.parametrize("solver", ["normal", "lsqr"])
def test_group_encodings_give_the_same_indices(clean_problem: Problem, encoding: str, solver: str) -> None:
    p = clean_problem
    ids = p.group_int()
    assert sorted(set(ids.tolist())) == [11110, 11140, 41190, 99999]
    mapping: dict[int, Any] = {
        "int64": {g: g for g in p.labels},
        "int32": {g: g for g in p.labels},
        "uint32": {g: g for g in p.labels},
        "codes": {g: k for k, g in enumerate(p.labels)},
        "float": {g: float(g) for g in p.labels},
        "str": {g: f"region-{g}" for g in p.labels},
        "categorical": {g: f"c{g}" for g in p.labels},
        "negative": {g: g - 50_000 for g in p.labels},
        "large_range": {11110: 2**40, 11140: -(2**30), 41190: 7, 99999: 2**25},
        "pandas": {g: g for g in p.labels},
    }[encoding]
    values = [mapping[g] for g in ids.tolist()]
    group: Any = {
        "int32": lambda: np.asarray(values, dtype=np.int32),
        "uint32": lambda: np.asarray(values, dtype=np.uint32),
        "codes": lambda: np.asarray(values, dtype=np.int32),
        "float": lambda: np.asarray(values, dtype=np.float64),
        "str": lambda: np.asarray(values),
        "categorical": lambda: pd.Categorical(values),
        "pandas": lambda: pd.Series(values),
    }.get(encoding, lambda: np.asarray(values, dtype=np.int64))()
    if encoding == "large_range":
        assert np.ptp(group) > 2**24
    want = estimate(p, "int", solver=solver)
    got = estimate(p, group, solver=solver)
    assert list(got.groups) == [*sorted(mapping.values()), "ALL"]
    inverse = {v: k for k, v in mapping.items()}
    got_rows = _by_label(got, inverse)
    want_rows = _by_label(want, {g: g for g in p.labels})
    assert got_rows.keys() == want_rows.keys()
    for key, row in want_rows.items():
        np.testing.assert_allclose(got_rows[key], row, atol=1e-12, rtol=0, equal_nan=True)


@pytest.mark.parametrize(
    ("prev", "recent", "y", "kwargs", "match"),
    [
        ([0, 1], [1, 2], [0.1, 0.2], {"n_periods": 1}, "at least 2 periods"),
        ([0, 1], [1, 2, 3], [0.1, 0.2], {}, "1-d arrays of one length"),
        ([0.0, 1.0], [1, 2], [0.1, 0.2], {}, "integers"),
        ([0, 1], [1, 2], [1, 2], {}, "floating point"),
        ([0, 1], [1, 2], [0.1, 0.2], {"group": np.array([1, 2, 3])}, "group has shape"),
    ],
)
def test_bad_input_raises_data_error(prev: Any, recent: Any, y: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(gpu_hpi.DataError, match=match):
        gpu_hpi.estimate_index(np.asarray(prev), np.asarray(recent), np.asarray(y), backend=CPU, **kwargs)


def test_align_groups_remaps_codes_and_keeps_missing() -> None:
    pairs = gpu_hpi.prepare_pairs(
        np.array([0, 0, 1]), np.array([1, 2, 2]), np.zeros(3), pd.Series(["b", None, "a"]), n_periods=3, backend="cpu"
    )
    table_labels = np.asarray(["a", "b", "c"], dtype=object)
    aligned = align_groups(pairs, table_labels)
    assert aligned.group.tolist() == [1, -1, 0]
    with pytest.raises(gpu_hpi.DataError):
        align_groups(pairs, np.asarray(["a", "c"], dtype=object))
