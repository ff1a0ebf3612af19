"""Stored cell tables (io/store.py): cells.parquet written and read back (save_cells / load_cells),
tables of different calendars combined (combine_tables) into the table of the union of their
pairs, and files that are not cell tables refused with a DataError, never another exception. The
command line's side: app/test_pipeline_cells.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import START_MONTH, month_labels
from stored_cells import (
    BASE,
    CPU,
    MALFORMED,
    MEANINGS,
    NEW_FIRST,
    OLD_LAST,
    T_ALL,
    Split,
    assert_index_equal,
    assert_tables_equal,
    expected,
    make_split,
    malformed_file,
    metadata,
    table_of,
)

import gpu_hpi
from gpu_hpi.data.calendar import Calendar
from gpu_hpi.io.store import cell_files, combine_tables, load_cells, save_cells

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

PRICE_SUMS = ("p_prev", "p_recent", "p_prev2", "p_recent2", "p_cross")
META_KEYS = {
    "format",
    "version",
    "periodicity",
    "start",
    "n_periods",
    "group_label_type",
    "groups",
    "sums",
    "dropped",
    "inputs",
}


# --------------------------------------------------------------------------------------------------
# save_cells / load_cells


@pytest.mark.parametrize("labels", ["int", "negative-int", "str"])
@pytest.mark.parametrize("prices", [True, False], ids=["prices", "no-prices"])
def test_round_trip(tmp_path: Path, labels: str, prices: bool) -> None:
    split = make_split(n=6000, seed=3)
    d = split.take()
    group = {
        "int": d["group"],
        "negative-int": np.asarray([-7, 0, 5, 1 << 40])[d["group"]],
        "str": np.asarray(["north", "south", "07", "7"], dtype=object)[d["group"]],
    }[labels]
    table = table_of(d, T_ALL, prices=prices, group=group)
    assert table.dropped == {"nonfinite_y": 8}
    calendar = Calendar("month", START_MONTH + 5, T_ALL)  # a window starting in 2014-06
    path = tmp_path / "sub" / "cells.parquet"
    save_cells(table, calendar, path)
    assert not list(path.parent.glob(".*.tmp"))

    loaded, cal = load_cells(str(path))
    assert cal == calendar
    assert_tables_equal(loaded, table, exact=True)
    assert loaded.has_prices == prices
    assert list(loaded.group_labels) == list(table.group_labels)
    # the loaded table gives the same index, bit for bit up to the solver's rounding
    for method in ("bmn", "case_shiller", *(["arithmetic"] if prices else [])):
        got = gpu_hpi.fit_index(loaded, backend=CPU, method=method).to_frame()
        want = gpu_hpi.fit_index(table, backend=CPU, method=method).to_frame()
        assert_index_equal(got, want, atol=1e-13)

    # the file: one row per non-empty cell, documented columns and metadata
    arrow = pq.read_table(path)
    names = [
        "group",
        "prev",
        "recent",
        "count",
        "sum_y",
        "sum_y2",
        *([f"sum_{k}" for k in PRICE_SUMS] if prices else []),
    ]
    assert arrow.column_names == names
    assert arrow.num_rows == table.n_cells
    frame = arrow.to_pandas()
    assert not frame.duplicated(["group", "prev", "recent"]).any()
    assert (frame["count"] > 0).all() and (frame["prev"] < frame["recent"]).all()
    assert frame["count"].sum() == len(d["y"]) - 8
    meta = metadata(path)
    assert set(meta) == META_KEYS
    assert (meta["format"], meta["version"], meta["periodicity"], meta["start"]) == (
        "gpu_hpi.cells",
        1,
        "month",
        "2014-06",
    )
    assert meta["n_periods"] == T_ALL
    assert meta["group_label_type"] == ("str" if labels == "str" else "int")
    assert meta["groups"] == [str(v) for v in table.group_labels]
    assert meta["sums"] == {k: MEANINGS[k] for k in ("y", "y2", *(PRICE_SUMS if prices else ()))}
    assert meta["dropped"] == {"nonfinite_y": 8}


@pytest.mark.parametrize(
    "periodicity, start, label", [("quarter", 2014 * 4 + 2, "2014-Q3"), ("year", 2009, "2009")], ids=["quarter", "year"]
)
def test_round_trip_other_calendars(tmp_path: Path, periodicity: str, start: int, label: str) -> None:
    rng = np.random.default_rng(5)
    n, t = 3000, 12
    prev = rng.integers(0, t - 1, n)
    recent = np.minimum(prev + rng.integers(1, 4, n), t - 1)
    pairs = gpu_hpi.prepare_pairs(prev, recent, rng.normal(0, 0.1, n), rng.integers(0, 3, n), n_periods=t, backend=CPU)
    table = gpu_hpi.build_cell_table(pairs, CPU)
    calendar = Calendar(periodicity, start, t)
    path = tmp_path / "cells.parquet"
    save_cells(table, calendar, path)
    loaded, cal = load_cells(str(path))
    assert cal == calendar
    assert_tables_equal(loaded, table, exact=True)
    meta = metadata(path)
    assert (meta["periodicity"], meta["start"], meta["n_periods"]) == (periodicity, label, t)


def test_cell_files(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    for name in ("b.parquet", "a.parquet", "notes.txt"):
        (store / name).write_bytes(b"x")
    a, b = str(store / "a.parquet"), str(store / "b.parquet")
    assert cell_files(str(store)) == [a, b]
    assert cell_files(str(store / "*.parquet")) == [a, b]
    assert cell_files([b, str(store)]) == [b, a, b]
    for bad in (str(tmp_path / "missing.parquet"), str(tmp_path / "none*.parquet"), str(tmp_path)):
        with pytest.raises(gpu_hpi.DataError):
            cell_files(bad)


# --------------------------------------------------------------------------------------------------
# merged tables = the union of their pairs


@pytest.mark.parametrize("method", ["bmn", "case_shiller", "arithmetic"])
def test_merged_tables_equal_union_of_pairs(tmp_path: Path, split: Split, method: str) -> None:
    old = split.part == 1
    new = split.part == 2
    # the old pairs in two tables by group (their label sets differ), the new ones in a third
    a = table_of(split.take(old & (split.group <= 1)), OLD_LAST + 1)
    b = table_of(split.take(old & (split.group > 1)), OLD_LAST + 1)
    c = table_of(split.take(new, offset=NEW_FIRST), T_ALL - NEW_FIRST)
    assert list(a.group_labels) == [0, 1] and list(b.group_labels) == [2] and list(c.group_labels) == [1, 2, 3]
    cal_old = Calendar("month", START_MONTH, OLD_LAST + 1)
    cal_new = Calendar("month", START_MONTH + NEW_FIRST, T_ALL - NEW_FIRST)
    paths = []
    for k, (tb, cal) in enumerate([(c, cal_new), (a, cal_old), (b, cal_old)]):
        paths.append(tmp_path / f"t{k}.parquet")
        save_cells(tb, cal, paths[-1])
    merged, calendar = combine_tables([load_cells(str(p)) for p in paths])
    assert calendar == Calendar("month", START_MONTH, T_ALL)
    assert merged.n_pairs == split.y.size - 8 and merged.dropped == {"nonfinite_y": 8}
    assert_tables_equal(merged, table_of(split.take(), T_ALL))

    got = gpu_hpi.fit_index(merged, backend=CPU, method=method, period_labels=calendar.labels()).to_frame()
    assert_index_equal(got, expected(split, method))
    # and another base period
    got = gpu_hpi.fit_index(
        merged, backend=CPU, method=method, period_labels=calendar.labels(), base_period=calendar.position(BASE)
    ).to_frame()
    assert_index_equal(got, expected(split, method, base=26))


def test_combine_keeps_prices_only_if_all_tables_have_them(split: Split) -> None:
    old, new = split.part == 1, split.part == 2
    cal_old = Calendar("month", START_MONTH, OLD_LAST + 1)
    cal_new = Calendar("month", START_MONTH + NEW_FIRST, T_ALL - NEW_FIRST)
    with_prices = table_of(split.take(new, offset=NEW_FIRST), T_ALL - NEW_FIRST)
    without = table_of(split.take(old), OLD_LAST + 1, prices=False)
    merged, _ = combine_tables([(without, cal_old), (with_prices, cal_new)])
    assert not merged.has_prices and sorted(merged.sums) == ["y", "y2"]
    got = gpu_hpi.fit_index(merged, backend=CPU, period_labels=month_labels(np.arange(T_ALL) + START_MONTH))
    assert_index_equal(got.to_frame(), expected(split))


def test_combine_refuses_mixed_periodicities_and_label_kinds(split: Split) -> None:
    d = split.take(split.part == 1)
    table = table_of(d, OLD_LAST + 1)
    monthly = (table, Calendar("month", START_MONTH, OLD_LAST + 1))
    quarterly = (table_of(d, 30), Calendar("quarter", 2014 * 4, 30))
    with pytest.raises(gpu_hpi.DataError, match=r"periodicities.*month.*quarter"):
        combine_tables([monthly, quarterly])
    texts = (table_of(d, OLD_LAST + 1, group=np.asarray(["a", "b", "c", "d"], dtype=object)[d["group"]]), monthly[1])
    with pytest.raises(gpu_hpi.DataError, match="integers"):
        combine_tables([monthly, texts])


# --------------------------------------------------------------------------------------------------
# files that are not cell tables: DataError, never another exception


@pytest.fixture(scope="module")
def small_cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid cells file: three groups 0, 1, 2, 2014-01.., with a drop count."""
    split = make_split(n=4000, seed=9)
    d = split.take(split.part == 1)
    path = tmp_path_factory.mktemp("small") / "cells.parquet"
    save_cells(table_of(d, OLD_LAST + 1), Calendar("month", START_MONTH, OLD_LAST + 1), path)
    assert metadata(path)["groups"] == ["0", "1", "2"]
    return path


@pytest.mark.parametrize("kind, arg, message", MALFORMED)
def test_load_malformed_is_a_data_error(
    tmp_path: Path, small_cells: Path, split: Split, kind: str, arg: Any, message: str
) -> None:
    path = malformed_file(kind, arg, small_cells, tmp_path / "cells.parquet", split)
    with pytest.raises(gpu_hpi.DataError, match=message) as info:
        table, _ = load_cells(str(path))
        # whatever loads must be usable as a table (its drop counts add up)
        gpu_hpi.merge_tables([table, table])
    assert str(path) in str(info.value)


def test_a_window_keeps_the_cells_inside_it_on_a_calendar_inside_it() -> None:
    """data.start / data.end on a stored table: the cells outside dropped and counted; a table
    wholly outside the window is left empty on a calendar inside it (a table starting after
    data.end kept its first cells, and its calendar stretched the merged one past data.end)."""
    import gpu_hpi
    from gpu_hpi.data.calendar import Calendar
    from gpu_hpi.io.store import window_cells

    pairs = gpu_hpi.prepare_pairs(np.array([0, 1, 2]), np.array([1, 2, 5]), np.array([0.1, 0.2, 0.3]), backend="cpu")
    table, calendar = gpu_hpi.build_cell_table(pairs, "cpu"), Calendar("month", 100, 6)  # periods 100..105
    cases = {  # (start, end) -> (calendar start, periods, (prev, recent) kept, pairs outside)
        (None, 90): (89, 2, [], 3),
        (None, 102): (100, 3, [(0, 1), (1, 2)], 1),
        (101, None): (101, 5, [(0, 1), (1, 4)], 1),
        (120, None): (120, 2, [], 3),
        (101, 102): (101, 2, [(0, 1)], 2),
    }
    for (start, end), (first, n, cells, outside) in cases.items():
        got, window = window_cells(table, calendar, start, end)
        assert (window.start, window.n_periods, got.n_periods) == (first, n, n), (start, end)
        assert list(zip(got.prev.tolist(), got.recent.tolist(), strict=True)) == cells, (start, end)
        assert got.dropped.get("period_out_of_range", 0) == outside and got.n_pairs + outside == 3
