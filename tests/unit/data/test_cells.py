"""The cell table (data/cells.py): sums per (group, prev, recent) against pandas, chunking, the sparse
path, merging; and the tables of random problems' chunks add up (hypothesis)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import SETTINGS, Problem, assert_tables_equal, problems, random_problem, valid_mask

import gpu_hpi
from gpu_hpi.data import cells, tabulate

CPU = gpu_hpi.resolve_backend("cpu")


def table_of(p: Problem, group: Any = "float", **kwargs: Any) -> gpu_hpi.CellTable:
    if isinstance(group, str):
        group = {"float": p.group_float, "str": p.group_str, "int": p.group_int}[group]()
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, group, n_periods=p.n_periods, backend=CPU)
    return gpu_hpi.build_cell_table(pairs, CPU, **kwargs)


def groupby_reference(p: Problem, group: Any) -> pd.DataFrame:
    """Cells of the valid pairs by pandas groupby: label, prev, recent, count, sum_y, sum_y2 (sorted)."""
    ok = valid_mask(p.prev, p.recent, p.y, group, p.n_periods)
    frame = pd.DataFrame(
        {
            "label": "ALL" if group is None else np.asarray(group, dtype=object)[ok],
            "prev": p.prev[ok],
            "recent": p.recent[ok],
            "y": p.y[ok],
            "y2": p.y[ok] ** 2,
        }
    )
    out = frame.groupby(["label", "prev", "recent"], sort=True).agg(
        count=("y", "size"), sum_y=("y", "sum"), sum_y2=("y2", "sum")
    )
    return out.reset_index()


def table_frame(table: gpu_hpi.CellTable) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": np.asarray(table.group_labels, dtype=object)[table.group],
            "prev": table.prev,
            "recent": table.recent,
            "count": table.count,
            "sum_y": table.sum_y,
            "sum_y2": table.sum_y2,
        }
    )


@pytest.fixture(params=["dense", "sparse"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on the dense (bincount) and on the sparse (sort) path of the table."""
    if request.param == "sparse":
        monkeypatch.setattr(cells, "DENSE_KEY_LIMIT", 0)
    return str(request.param)


@pytest.mark.parametrize("encoding", ["float", "str", None])
def test_table_matches_pandas_groupby(problem: Problem, path: str, encoding: str | None) -> None:
    group = None if encoding is None else {"float": problem.group_float, "str": problem.group_str}[encoding]()
    table = table_of(problem, group)
    want = groupby_reference(problem, group)
    got = table_frame(table)
    assert len(got) == len(want) == table.n_cells
    assert got["label"].tolist() == want["label"].tolist()
    for name in ("prev", "recent", "count"):
        np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy(), err_msg=name)
    for name in ("sum_y", "sum_y2"):
        np.testing.assert_allclose(got[name].to_numpy(), want[name].to_numpy(), rtol=1e-12, atol=1e-13)
    assert table.n_pairs == int(want["count"].sum())


def test_table_invariants(problem: Problem, path: str) -> None:
    table = table_of(problem)
    t = table.n_periods
    assert table.count.dtype == np.int64 and table.sum_y.dtype == np.float64
    assert ((table.prev >= 0) & (table.prev < table.recent) & (table.recent < t)).all()
    assert (table.count > 0).all()
    key = table.key()
    assert (np.diff(key) > 0).all()  # sorted, one row per cell
    assert list(table.group_labels) == [11110.0, 11140.0, 41190.0, 99999.0]
    assert table.n_groups == 4
    assert table.n_pairs + sum(table.dropped.values()) == problem.n_pairs
    host = table.to_host()
    np.testing.assert_array_equal(host.key(), key)


def test_chunk_additivity(problem: Problem, path: str) -> None:
    half = problem.n_pairs // 2
    first = table_of(problem.take(np.arange(half)))
    second = table_of(problem.take(np.arange(half, problem.n_pairs)))
    whole = table_of(problem)
    assert_tables_equal(gpu_hpi.merge_tables([first, second]), whole, rtol=1e-12)
    assert_tables_equal(first + second, whole, rtol=1e-12)
    assert_tables_equal(gpu_hpi.merge_tables([whole]), whole, rtol=0)
    for reason, count in whole.dropped.items():
        assert first.dropped.get(reason, 0) + second.dropped.get(reason, 0) == count


@pytest.mark.parametrize("chunk_size", [1, 7, 50])
def test_chunk_size_does_not_change_the_table(problem: Problem, path: str, chunk_size: int) -> None:
    assert_tables_equal(table_of(problem, chunk_size=chunk_size), table_of(problem), rtol=1e-12)


def test_sparse_path_equals_dense_path(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    dense = table_of(problem, "str")
    for limit in (0, 17):  # no dense keys at all; fewer than this problem's G * T^2
        monkeypatch.setattr(cells, "DENSE_KEY_LIMIT", limit)
        for chunk_size in (None, 3, 7):
            assert_tables_equal(table_of(problem, "str", chunk_size=chunk_size), dense, rtol=1e-12)
        monkeypatch.setattr(tabulate, "SPARSE_FOLD_ROWS", 5)  # fold the gathered pairs every few chunks
        assert_tables_equal(table_of(problem, "str", chunk_size=3), dense, rtol=1e-12)


def test_sparse_path_gives_the_same_index(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    def fit() -> gpu_hpi.IndexResult:
        return gpu_hpi.estimate_index(
            problem.prev, problem.recent, problem.y, problem.group_float(), n_periods=problem.n_periods, backend=CPU
        )

    with pytest.warns(gpu_hpi.IdentificationWarning):
        dense = fit()
    monkeypatch.setattr(cells, "DENSE_KEY_LIMIT", 0)
    with pytest.warns(gpu_hpi.IdentificationWarning):
        sparse = fit()
    np.testing.assert_allclose(sparse.log_index, dense.log_index, atol=1e-12, rtol=0)
    np.testing.assert_allclose(sparse.se, dense.se, rtol=1e-10, atol=0)


def test_merge_aligns_different_label_sets(path: str) -> None:
    p = random_problem(np.random.default_rng(21), labels=(1, 2, 3), small_group=False)
    names = {1: "east", 2: "north", 3: "west"}
    labels = np.array([None if m else names[g] for g, m in zip(p.gid, p.missing, strict=True)], dtype=object)
    east_north = np.isin(p.gid, [1, 2]) & ~p.missing & (np.arange(p.n_pairs) % 2 == 0)
    rest = ~east_north
    a = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(
            p.prev[east_north],
            p.recent[east_north],
            p.y[east_north],
            labels[east_north],
            n_periods=p.n_periods,
            backend=CPU,
        ),
        CPU,
    )
    b = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(
            p.prev[rest], p.recent[rest], p.y[rest], labels[rest], n_periods=p.n_periods, backend=CPU
        ),
        CPU,
    )
    assert list(a.group_labels) == ["east", "north"]
    assert list(b.group_labels) == ["east", "north", "west"]
    whole = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, labels, n_periods=p.n_periods, backend=CPU), CPU
    )
    merged = a + b
    assert list(merged.group_labels) == ["east", "north", "west"]
    assert_tables_equal(merged, whole, rtol=1e-12)
    # disjoint label sets: the codes of the second table are shifted, not reused
    west = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(
            np.array([0, 1]),
            np.array([1, 2]),
            np.array([0.1, 0.2]),
            np.array(["west", "west"]),
            n_periods=p.n_periods,
            backend=CPU,
        ),
        CPU,
    )
    only_a = a + west
    assert list(only_a.group_labels) == ["east", "north", "west"]
    frame = table_frame(only_a)
    west_cells = frame.loc[frame["label"] == "west", ["prev", "recent", "count"]].to_numpy().tolist()
    assert west_cells == [[0, 1, 1], [1, 2, 1]]
    assert only_a.n_pairs == a.n_pairs + 2


def test_merge_two_groups_disjoint_label_sets_exact() -> None:
    def one(label: str, prev: list[int], recent: list[int], y: list[float]) -> gpu_hpi.CellTable:
        pairs = gpu_hpi.prepare_pairs(
            np.array(prev), np.array(recent), np.array(y), np.array([label] * len(y)), n_periods=3, backend=CPU
        )
        return gpu_hpi.build_cell_table(pairs, CPU)

    merged = gpu_hpi.merge_tables(
        [one("b", [0, 0], [1, 1], [0.5, 0.25]), one("a", [1], [2], [1.0]), one("b", [0], [1], [0.25])]
    )
    assert list(merged.group_labels) == ["a", "b"]
    assert merged.group.tolist() == [0, 1]
    assert merged.prev.tolist() == [1, 0] and merged.recent.tolist() == [2, 1]
    assert merged.count.tolist() == [1, 3]
    assert merged.sum_y.tolist() == [1.0, 1.0]
    assert merged.sum_y2.tolist() == [1.0, 0.375]


def test_pooled_equals_table_without_groups(problem: Problem, path: str) -> None:
    grouped = table_of(problem)
    pooled = grouped.pooled()
    assert list(pooled.group_labels) == ["ALL"] and (pooled.group == 0).all()
    # the pooled table holds the pairs with a (non-missing) group: the table of those without the column
    has_group = ~problem.missing
    plain = table_of(problem.take(np.nonzero(has_group)[0]), group=None)
    assert pooled.dropped == grouped.dropped
    assert_tables_equal(pooled, replace(plain, dropped=grouped.dropped), rtol=1e-12)
    assert pooled.n_pairs == grouped.n_pairs
    assert pooled.n_cells < grouped.n_cells


def test_merge_checks_its_inputs(problem: Problem) -> None:
    table = table_of(problem)
    wider = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(
            problem.prev, problem.recent, problem.y, problem.group_float(), n_periods=problem.n_periods + 1, backend=CPU
        ),
        CPU,
    )
    with pytest.raises(gpu_hpi.DataError, match="different numbers of periods"):
        gpu_hpi.merge_tables([table, wider])
    with pytest.raises(gpu_hpi.DataError, match="different numbers of periods"):
        _ = table + wider
    with pytest.raises(gpu_hpi.DataError):
        gpu_hpi.merge_tables([])
    with pytest.raises(gpu_hpi.DataError, match="cannot be compared"):
        gpu_hpi.merge_tables([table, table_of(problem, "str")])


def test_a_group_named_all_beside_others_is_refused(problem: Problem) -> None:
    """ "ALL" names the pooled index and the one group of pairs without groups: a merge of grouped
    with ungrouped tables, or a region of that name, would pass for the pooled index."""
    grouped, plain = table_of(problem, "str"), table_of(problem, group=None)
    assert list(plain.group_labels) == ["ALL"]
    with pytest.raises(gpu_hpi.DataError, match='a group is named "ALL", the name of the pooled index'):
        gpu_hpi.merge_tables([grouped, plain])
    renamed = replace(grouped, group_labels=np.asarray(["ALL", *grouped.group_labels[1:]], dtype=object))
    with pytest.raises(gpu_hpi.DataError, match='a group is named "ALL"'):
        gpu_hpi.merge_tables([renamed, renamed])
    assert gpu_hpi.merge_tables([plain, plain]).n_pairs == 2 * plain.n_pairs  # tables without groups merge


def test_a_backend_name_builds_the_same_table(problem: Problem) -> None:
    pairs = gpu_hpi.prepare_pairs(problem.prev, problem.recent, problem.y, n_periods=problem.n_periods, backend=CPU)
    assert_tables_equal(gpu_hpi.build_cell_table(pairs, "cpu"), gpu_hpi.build_cell_table(pairs, CPU), rtol=0)


def test_strict_table(problem: Problem, path: str) -> None:
    with pytest.raises(gpu_hpi.DataError, match="strict"):
        table_of(problem, strict=True)
    clean = random_problem(np.random.default_rng(5), invalid=False)
    assert_tables_equal(table_of(clean, "int", strict=True), table_of(clean, "int"), rtol=0)
    assert table_of(clean, "int").dropped == {}


def test_empty_input(path: str) -> None:
    none = np.zeros(0, dtype=np.int64)
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(none, none, np.zeros(0), n_periods=4, backend=CPU), CPU)
    assert table.n_cells == 0 and table.n_pairs == 0 and table.dropped == {}
    assert list(table.group_labels) == ["ALL"]


def test_shift_places_the_table_in_a_wider_window(problem: Problem) -> None:
    table = table_of(problem, "str")
    shifted = table.shift(3, problem.n_periods + 5)
    assert shifted.n_periods == problem.n_periods + 5
    np.testing.assert_array_equal(shifted.prev, table.prev + 3)
    np.testing.assert_array_equal(shifted.recent, table.recent + 3)
    np.testing.assert_array_equal(shifted.count, table.count)
    with pytest.raises(gpu_hpi.DataError):
        table.shift(6, problem.n_periods + 5)
    with pytest.raises(gpu_hpi.DataError):
        table.shift(-1, problem.n_periods + 5)
    with pytest.warns(gpu_hpi.IdentificationWarning):
        original = gpu_hpi.fit_index(table, backend=CPU)
    with pytest.warns(gpu_hpi.IdentificationWarning):
        moved = gpu_hpi.fit_index(shifted, backend=CPU, base_period=3, min_pairs=problem.n_periods)
    np.testing.assert_allclose(
        moved.log_index[:, 3 : 3 + problem.n_periods], original.log_index, atol=1e-12, equal_nan=True
    )
    assert np.isnan(moved.log_index[:, :3]).all()


@pytest.mark.parametrize("encoding", ["float", "str", None])
def test_a_single_table_is_already_its_own_sum(problem: Problem, path: str, encoding: str | None) -> None:
    """TableAccumulator.total of one table returns it placed, unmerged: merging it alone (a sort
    of every cell) must give the same table, which holds where every builder's cells are sorted by
    key and its labels sorted and distinct."""
    table = table_of(problem, encoding)
    acc = cells.TableAccumulator()
    acc.add(2, table)
    lo, total = acc.total(0, problem.n_periods + 3)
    assert lo == 0
    want = cells.merge_tables([table.shift(2, problem.n_periods + 4)])
    assert_tables_equal(total, want)
    np.testing.assert_array_equal(total.group_labels, want.group_labels)
    np.testing.assert_array_equal(total.prev, want.prev)  # the same order, not only the same cells
    np.testing.assert_array_equal(total.sum_y, want.sum_y)


@pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")
@SETTINGS
@given(p=problems(), cuts=st.lists(st.floats(0, 1), max_size=4), seed=st.integers(0, 2**32 - 1))
def test_tables_of_chunks_add_up(p: Problem, cuts: list[float], seed: int) -> None:
    order = np.random.default_rng(seed).permutation(p.n_pairs)
    bounds = [0, *sorted(int(c * p.n_pairs) for c in cuts), p.n_pairs]
    parts = [table_of(p.take(order[a:b])) for a, b in itertools.pairwise(bounds)]
    whole = table_of(p)
    assert_tables_equal(gpu_hpi.merge_tables(parts), whole, rtol=1e-12)
    assert sum(t.n_pairs for t in parts) == whole.n_pairs


def test_a_table_moves_to_a_backend_and_back() -> None:
    """to_backend: every array through the backend's namespace, the same cells; on the CPU the
    same arrays, not copies."""
    rng = np.random.default_rng(3)
    prev = rng.integers(0, 8, 500)
    recent = np.minimum(prev + rng.integers(1, 4, 500), 9)
    pairs = gpu_hpi.prepare_pairs(
        prev, recent, rng.normal(size=500), rng.integers(0, 3, 500), n_periods=10, backend=CPU
    )
    table = gpu_hpi.build_cell_table(pairs, CPU)
    moved = table.to_backend(CPU)
    assert all(np.shares_memory(getattr(moved, k), getattr(table, k)) for k in ("group", "prev", "recent", "count"))
    assert all(np.shares_memory(moved.sums[k], v) for k, v in table.sums.items())
    assert_tables_equal(moved.to_host(), table, rtol=0)
