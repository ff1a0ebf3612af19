"""Stored cell tables on the command line: `output.cells=true`, `data.add_cells` and `data=cells` (the
library's side, cells.parquet itself: io/test_store.py).

The reference is always the same pairs in one piece (tests/stored_cells.py): the index of merged
tables (whose calendars differ) must equal the index of the union of their pairs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import START_MONTH, Run, q, run_app, seed_pairs
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
    malformed_file,
    metadata,
    table_of,
)

import gpu_hpi
from gpu_hpi.data.calendar import Calendar
from gpu_hpi.io.store import load_cells, save_cells
from gpu_hpi.synthetic import SyntheticMarket

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

PRICE_COLUMNS = ("data.columns.price_prev=PrevPrice", "data.columns.price_recent=RecentPrice")


def failed(run: Run, *fragments: str) -> str:
    """Exit 2, one 'gpu_hpi: error:' line, no traceback and no outputs at all (cells.parquet included)."""
    line = run.assert_failed(*fragments)
    leftovers = (
        [p.name for p in run.dir.iterdir() if p.is_file() and p.name != "gpu_hpi.log"] if run.dir.exists() else []
    )
    assert not leftovers, leftovers
    return line


def diag_frame(run: Run) -> pd.DataFrame:
    return pd.read_csv(run.dir / "diagnostics.csv", dtype={"group": str, "period": str})


def assert_revision_equal(got: Run, want: Run) -> None:
    a, b = diag_frame(got), diag_frame(want)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    assert a["group"].tolist() == b["group"].tolist() and a["period"].tolist() == b["period"].tolist()
    for col in a.columns[2:]:
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-8, atol=1e-12, err_msg=col)
    assert np.isfinite(a["revision_mean"].to_numpy(float)).any()
    ra, rb = got.summary["diagnostics"]["revision"], want.summary["diagnostics"]["revision"]
    assert isinstance(ra, dict) and ra["vintages"] == rb["vintages"] > 0
    for stat in ("mean", "median"):
        assert ra[stat].keys() == rb[stat].keys()
        for g, v in rb[stat].items():
            assert (ra[stat][g] is None) == (v is None), (stat, g)
            if v is not None:
                assert ra[stat][g] == pytest.approx(v, rel=1e-9, abs=1e-12), (stat, g)


class UpdateRuns:
    """A: all pairs; B: the old pairs; E: the new pairs (each with output.cells=true);
    C: the new pairs plus B's cells (data.add_cells)."""

    def __init__(self, root: Path, split: Split) -> None:
        self.root, self.split = root, split
        self.n_runs = 0
        self.files: dict[str, Path] = {}
        for name, mask in (("all", None), ("old", split.part == 1), ("new", split.part == 2)):
            self.files[name] = root / f"{name}.parquet"
            split.frame(mask).to_parquet(self.files[name], index=False)
        self.a = self.pairs("all", "output.cells=true", name="A").ok()
        self.b = self.pairs("old", "output.cells=true", name="B").ok()
        self.e = self.pairs("new", "output.cells=true", name="E").ok()
        self.c = self.pairs("new", f"data.add_cells={q(self.b.dir / 'cells.parquet')}", name="C").ok()

    def unique(self, name: str) -> str:
        """A fresh run directory name (the runs of all tests share the root)."""
        self.n_runs += 1
        return f"{self.n_runs:03d}-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)

    def pairs(self, which: str, *overrides: str, name: str) -> Run:
        overrides = ("data=pairs", f"data.path={q(self.files[which])}", *PRICE_COLUMNS, *overrides)
        return run_app(self.root, *overrides, name=self.unique(name))

    def cells(self, path: str, *overrides: str, name: str) -> Run:
        return run_app(self.root, "data=cells", f"data.path={path}", *overrides, name=self.unique(name))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, split: Split) -> UpdateRuns:
    return UpdateRuns(tmp_path_factory.mktemp("update"), split)


# --------------------------------------------------------------------------------------------------
# output.cells, data.add_cells, data=cells


def test_cli_writes_cells(runs: UpdateRuns) -> None:
    s = runs.split
    for run, mask, start, t in (
        (runs.a, None, "2014-01", T_ALL),
        (runs.b, s.part == 1, "2014-01", OLD_LAST + 1),
        (runs.e, s.part == 2, "2015-01", T_ALL - NEW_FIRST),
    ):
        path = run.dir / "cells.parquet"
        assert "cells.parquet" in run.summary["outputs"]
        meta = metadata(path)
        assert (meta["start"], meta["n_periods"], meta["periodicity"]) == (start, t, "month")
        assert meta["sums"] == MEANINGS and meta["group_label_type"] == "int"
        table, cal = load_cells(str(path))
        assert cal == Calendar("month", START_MONTH + (0 if start == "2014-01" else NEW_FIRST), t)
        offset = 0 if start == "2014-01" else NEW_FIRST
        assert_tables_equal(table, table_of(s.take(mask, offset=offset), t))
    assert metadata(runs.b.dir / "cells.parquet")["dropped"] == {"nonfinite_y": 3}
    assert metadata(runs.e.dir / "cells.parquet")["groups"] == ["1", "2", "3"]
    # without output.cells (and without add_cells) no table is written
    plain = runs.pairs("old", name="plain").ok()
    assert not (plain.dir / "cells.parquet").exists() and "cells.parquet" not in plain.summary["outputs"]


def test_cli_add_cells_equals_all_pairs(runs: UpdateRuns) -> None:
    assert_index_equal(runs.a.frame, expected(runs.split))  # the reference itself
    assert_index_equal(runs.c.frame, runs.a.frame)
    assert_revision_equal(runs.c, runs.a)
    # the merged table written by the update is the table of all the pairs
    merged, cal = load_cells(str(runs.c.dir / "cells.parquet"))
    full, cal_full = load_cells(str(runs.a.dir / "cells.parquet"))
    assert cal == cal_full == Calendar("month", START_MONTH, T_ALL)
    assert_tables_equal(merged, full)
    assert without_inputs(metadata(runs.c.dir / "cells.parquet")) == without_inputs(
        metadata(runs.a.dir / "cells.parquet")
    )
    # the merged table records the files of both parts: the old pairs' (from the stored table) and the new
    assert [i["rows"] for i in metadata(runs.c.dir / "cells.parquet")["inputs"]] == [
        i["rows"] for i in (*metadata(runs.b.dir / "cells.parquet")["inputs"], *runs.c.summary["run"]["inputs"][:1])
    ]
    sa, sc = runs.a.summary, runs.c.summary
    for key in ("n_pairs_read", "n_pairs_used", "dropped", "first_period", "last_period", "n_periods", "n_groups"):
        assert sc[key] == sa[key], key
    assert sa["dropped"] == {"nonfinite_y": 8}
    assert sc["n_pairs_added_from_cells"] == int((runs.split.part == 1).sum()) - 3
    assert "cells.parquet" in sc["outputs"]


@pytest.mark.parametrize("source", ["list", "directory", "glob", "chained", "mixed-prices"])
def test_cli_data_cells_equals_all_pairs(runs: UpdateRuns, tmp_path: Path, source: str) -> None:
    b, e = runs.b.dir / "cells.parquet", runs.e.dir / "cells.parquet"
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(b, store / "2016-06.parquet")
    shutil.copy(e, store / "2018-12.parquet")
    if source == "mixed-prices":  # the old table without price sums: y-based methods still work
        s = runs.split
        save_cells(
            table_of(s.take(s.part == 1), OLD_LAST + 1, prices=False),
            Calendar("month", START_MONTH, OLD_LAST + 1),
            store / "2016-06.parquet",
        )
    path = {
        "list": f"[{q(e)},{q(b)}]",
        "directory": q(store),
        "glob": q(store / "*.parquet"),
        "chained": q(runs.c.dir / "cells.parquet"),
        "mixed-prices": q(store),
    }[source]
    run = runs.cells(path, *(["output.cells=true"] if source == "list" else []), name=source).ok()
    assert_index_equal(run.frame, runs.a.frame)
    assert_revision_equal(run, runs.a)
    s = run.summary
    for key in ("n_pairs_read", "n_pairs_used", "dropped", "first_period", "last_period", "n_periods", "n_groups"):
        assert s[key] == runs.a.summary[key], key
    assert len(s["cell_tables"]) == (1 if source == "chained" else 2)
    if source == "list":  # the sum of the stored tables, written on request: the table of all the pairs
        assert without_inputs(metadata(run.dir / "cells.parquet")) == without_inputs(
            metadata(runs.a.dir / "cells.parquet")
        )
        assert_tables_equal(
            load_cells(str(run.dir / "cells.parquet"))[0], load_cells(str(runs.a.dir / "cells.parquet"))[0]
        )
    else:
        assert not (run.dir / "cells.parquet").exists()  # data=cells writes no table unless asked
    if source == "mixed-prices":
        arith = runs.cells(path, "method=arithmetic", name="mixed-arithmetic")
        failed(arith, "prices")


@pytest.mark.parametrize("method", ["case_shiller", "arithmetic"])
def test_cli_methods_from_cells(runs: UpdateRuns, method: str) -> None:
    b, e = runs.b.dir / "cells.parquet", runs.e.dir / "cells.parquet"
    want = runs.pairs("all", f"method={method}", name=f"A-{method}").ok()
    assert_index_equal(want.frame, expected(runs.split, method))
    update = runs.pairs("new", f"method={method}", f"data.add_cells={q(b)}", name=f"C-{method}").ok()
    stored = runs.cells(f"[{q(b)},{q(e)}]", f"method={method}", name=f"D-{method}").ok()
    for run in (update, stored):
        assert run.summary["method"] == method
        assert_index_equal(run.frame, want.frame)
        assert_revision_equal(run, want)


def test_cli_base_period_and_revision_from_cells(runs: UpdateRuns) -> None:
    b, e = runs.b.dir / "cells.parquet", runs.e.dir / "cells.parquet"
    want = runs.pairs("all", f"index.base_period={BASE}", name="A-base").ok()
    got = runs.cells(f"[{q(b)},{q(e)}]", f"index.base_period={BASE}", "method=case_shiller", name="D-cs-base").ok()
    got_bmn = runs.cells(f"[{q(b)},{q(e)}]", f"index.base_period={BASE}", name="D-base").ok()
    assert got_bmn.summary["base_period"] == BASE
    assert_index_equal(got_bmn.frame, want.frame)
    assert_index_equal(got_bmn.frame, expected(runs.split, base=26))
    assert_revision_equal(got_bmn, want)
    frame = got_bmn.frame
    at_base = frame[(frame["period"] == BASE) & frame["log_index"].notna()]
    assert sorted(at_base["group"]) == ["0", "1", "2", "3", "ALL"]  # the base lies in every group's span
    np.testing.assert_allclose(at_base["index"], 100.0)
    assert_index_equal(got.frame, expected(runs.split, "case_shiller", base=26))
    # a base period outside the merged window
    failed(runs.cells(q(b), "index.base_period=2017-01", name="D-outside"), "2017-01")


# --------------------------------------------------------------------------------------------------
# files that are not cell tables, periodicities


@pytest.fixture(scope="module")
def other_tables(tmp_path_factory: pytest.TempPathFactory, split: Split) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("other")
    d = split.take(split.part == 1)
    quarterly = root / "quarterly.parquet"
    qd = {**d, "prev": d["prev"] // 3, "recent": d["recent"] // 3}
    keep = qd["prev"] < qd["recent"]
    save_cells(table_of({k: v[keep] for k, v in qd.items()}, 10), Calendar("quarter", 2014 * 4, 10), quarterly)
    text = root / "text.parquet"
    labels = np.asarray(["a", "b", "c", "d"], dtype=object)[d["group"]]
    save_cells(table_of(d, OLD_LAST + 1, group=labels), Calendar("month", START_MONTH, OLD_LAST + 1), text)
    return {"quarterly": quarterly, "text": text}


CLI_MALFORMED = [p for p in MALFORMED if p.id in ("random-bytes", "plain-parquet", "version-99", "y%", "no-y2")]
CLI_MALFORMED += [p for p in MALFORMED if p.id == "prev-equal-recent"]
CLI_MALFORMED += [p for p in MALFORMED if p.id == "metadata-a-string"]


@pytest.mark.parametrize("kind, arg, message", CLI_MALFORMED)
def test_cli_malformed_cells(tmp_path: Path, runs: UpdateRuns, split: Split, kind: str, arg: Any, message: str) -> None:
    good = runs.b.dir / "cells.parquet"
    bad = malformed_file(kind, arg, good, tmp_path / "cells.parquet", split)
    line = failed(runs.cells(f"[{q(runs.e.dir / 'cells.parquet')},{q(bad)}]", name=f"cells-{kind}"), message)
    assert str(bad) in line
    if kind in ("random", "edit"):  # as the stored history of an update: nothing written either
        failed(runs.pairs("new", f"data.add_cells={q(bad)}", name=f"add-{kind}"), message)


def test_cli_periodicities(runs: UpdateRuns, other_tables: dict[str, Path]) -> None:
    monthly, quarterly = runs.b.dir / "cells.parquet", other_tables["quarterly"]
    for periodicity in ("month", "quarter"):
        line = failed(
            runs.cells(
                f"[{q(monthly)},{q(quarterly)}]", f"index.periodicity={periodicity}", name=f"mixed-{periodicity}"
            )
        )
        assert "month" in line and "quarter" in line and "periodicit" in line
    # a table of another periodicity than the index asked for
    line = failed(runs.cells(q(monthly), "index.periodicity=quarter", name="monthly-as-quarter"), "month")
    assert "index.periodicity" in line
    failed(runs.pairs("new", f"data.add_cells={q(quarterly)}", name="add-quarterly"), "quarter")
    # the quarterly table alone, as quarters: fine
    ok = runs.cells(q(quarterly), "index.periodicity=quarter", name="quarterly").ok()
    assert ok.summary["first_period"] == "2014-Q1" and ok.summary["n_periods"] == 10


def test_cli_label_kinds_and_missing_files(runs: UpdateRuns, other_tables: dict[str, Path], tmp_path: Path) -> None:
    line = failed(runs.cells(f"[{q(runs.b.dir / 'cells.parquet')},{q(other_tables['text'])}]", name="kinds"))
    assert "integers" in line
    failed(runs.pairs("new", f"data.add_cells={q(other_tables['text'])}", name="add-kinds"), "integers")
    (tmp_path / "empty").mkdir()
    failed(runs.cells(f"[{q(runs.b.dir / 'cells.parquet')},{q(tmp_path / 'empty')}]", name="empty-dir"), "empty")
    failed(runs.pairs("new", f"data.add_cells={q(tmp_path / 'nowhere.parquet')}", name="add-missing"), "nowhere")


# --------------------------------------------------------------------------------------------------
# what needs the pairs


NEEDS_PAIRS = {
    "robust": ("method=robust",),
    "cs-absolute": ("method=case_shiller", "method.stage2=absolute"),
    "lsqr": ("solver=lsqr",),
    "accuracy": ("diagnostics.accuracy_folds=5",),
}


@pytest.mark.parametrize("options", list(NEEDS_PAIRS.values()), ids=list(NEEDS_PAIRS))
@pytest.mark.parametrize("source", ["data=cells", "data.add_cells"])
def test_cli_needs_pairs(runs: UpdateRuns, source: str, options: tuple[str, ...]) -> None:
    cells = runs.b.dir / "cells.parquet"
    if source == "data=cells":
        run = runs.cells(q(cells), *options, name=f"cells-{options[-1]}")
    else:
        run = runs.pairs("new", f"data.add_cells={q(cells)}", *options, name=f"add-{options[-1]}")
    line = failed(run, "needs the pairs", source)
    assert options[-1].split("=")[1] in line or options[-1].split("=")[0] in line


# --------------------------------------------------------------------------------------------------
# size


def test_size_of_a_million_pairs(tmp_path: Path) -> None:
    n, t, g = 1_000_000, 123, 17
    market = SyntheticMarket.create(n, t, g, 20140101, 0.1, 30.0)
    group, prev, recent, y = market.arrays()
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=t, backend=CPU), CPU)
    path = tmp_path / "cells.parquet"
    save_cells(table, Calendar("month", START_MONTH, t), path)
    size = path.stat().st_size
    assert size < 5_000_000, f"{size / 1e6:.1f} MB"
    assert table.n_cells <= g * t * (t - 1) // 2
    loaded, _ = load_cells(str(path))
    assert loaded.n_pairs == n
    assert_tables_equal(loaded, table, exact=True)

    # the command line's default market (1M pairs, 17 groups, 123 months), and its index from the table
    run = run_app(tmp_path, "output.cells=true", "diagnostics.revision=false", name="synthetic").ok()
    written = run.dir / "cells.parquet"
    assert written.stat().st_size < 5_000_000
    assert_tables_equal(load_cells(str(written))[0], table)
    again = run_app(tmp_path, "data=cells", f"data.path={q(written)}", "diagnostics.revision=false", name="again").ok()
    assert_index_equal(again.frame, run.frame)
    assert again.summary["n_pairs_read"] == n


def without_inputs(meta: dict) -> dict:
    """A stored table's metadata less the fingerprints of its input files (tables of the same pairs
    from other files)."""
    return {k: v for k, v in meta.items() if k != "inputs"}


def test_pairs_or_tables_counted_twice_are_refused(tmp_path: Path) -> None:
    """The monthly workflow's natural mistakes: the same stored table added twice (under another
    name), and pairs added to a history that already holds them. One line each, unless
    data.allow_double_count=true says it is meant."""
    pairs = tmp_path / "pairs.parquet"
    pq.write_table(seed_pairs(4000, 7), pairs)
    history = run_app(tmp_path, "data=pairs", f"data.path={pairs}", "output.cells=true", name="history").ok()
    table = history.dir / "cells.parquet"
    copy = tmp_path / "copy.parquet"
    shutil.copy(table, copy)
    twice = run_app(tmp_path, "data=cells", f"data.path=[{q(table)},{q(copy)}]", name="twice")
    assert twice.rc == 2 and "counts pairs of" in twice.stderr and str(pairs) in twice.stderr
    again = run_app(tmp_path, "data=pairs", f"data.path={pairs}", f"data.add_cells={q(table)}", name="again")
    assert again.rc == 2 and "data.allow_double_count=true" in again.stderr and again.stderr.count("\n") == 1
    meant = run_app(
        tmp_path, "data=cells", f"data.path=[{q(table)},{q(copy)}]", "data.allow_double_count=true", name="meant"
    ).ok()
    assert meant.summary["n_pairs_read"] == 2 * history.summary["n_pairs_read"]
    # tables of a synthetic market: its options are its identity (no input file: counted twice before)
    market = run_app(tmp_path, "data.n_pairs=3000", "output.cells=true", "diagnostics.revision=false", name="market")
    same = market.ok().dir / "cells.parquet"
    again = run_app(tmp_path, "data=cells", f"data.path=[{q(same)},{q(same)}]", name="market_twice")
    assert again.rc == 2 and "counts pairs of the synthetic market of seed" in again.stderr, again.stderr
    other = run_app(tmp_path, "data.n_pairs=3000", "data.seed=7", "output.cells=true", name="other").ok().dir
    both = run_app(tmp_path, "data=cells", f"data.path=[{q(same)},{q(other / 'cells.parquet')}]", name="both").ok()
    assert both.summary["n_pairs_read"] == 6000


@pytest.mark.parametrize(
    "window", [["data.start=2015-01"], ["data.end=2016-06"], ["data.start=2014-07", "data.end=2016-09"]]
)
def test_an_update_within_a_window_equals_one_run_of_all_the_pairs_in_it(tmp_path: Path, window: list[str]) -> None:
    """data.start / data.end bound the stored cells added too: the cells outside them are dropped
    and counted as the new pairs outside them are (the stored table's window was kept: another
    base period and index, exit 0)."""
    frame = seed_pairs(12_000, 23, nulls=False).to_pandas()
    cut = frame["RecentYearMonth"] < np.datetime64("2016-01-01")
    frame[cut].to_parquet(tmp_path / "old.parquet", index=False)
    frame[~cut].to_parquet(tmp_path / "new.parquet", index=False)
    frame.to_parquet(tmp_path / "all.parquet", index=False)
    history = run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'old.parquet'}", "output.cells=true", name="h")
    cells = history.ok().dir / "cells.parquet"
    new = f"data.path={tmp_path / 'new.parquet'}"
    update = run_app(tmp_path, "data=pairs", new, f"data.add_cells={q(cells)}", *window, name="update").ok()
    whole = run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'all.parquet'}", *window, name="whole").ok()
    assert_index_equal(update.frame, whole.frame)
    for key in ("first_period", "last_period", "base_period", "n_pairs_read", "n_pairs_used"):
        assert update.summary[key] == whole.summary[key], key
    # the pairs the history's run dropped keep the reason it counted them under (e.g. same_period,
    # where one run of all counts a pair outside the window as period_out_of_range first)
    assert sum(update.summary["dropped"].values()) == sum(whole.summary["dropped"].values())


def test_saved_pairs_stand_for_the_sale_records_they_were_made_from(tmp_path: Path) -> None:
    """Pairs saved by a run (data.save_pairs) added to that run's table counted every pair twice
    (exit 0): the saved file keeps the fingerprints of the sale records in its metadata."""
    from sales_reference import random_sales, write_sales

    sales = write_sales(tmp_path, random_sales(6, n_props=400), ["a", "b", "c"])
    saved = tmp_path / "pairs.parquet"
    made = run_app(
        tmp_path,
        "data=transactions",
        f"data.path={sales}",
        "data.columns.property=[a,b,c]",
        "data.columns.group=group",
        f"data.save_pairs={saved}",
        "output.cells=true",
        name="made",
    ).ok()
    history = made.dir / "cells.parquet"
    added = run_app(tmp_path, "data=pairs", f"data.path={saved}", f"data.add_cells={q(history)}", name="added")
    assert added.rc == 2 and f"the input counts pairs of {sales} again" in added.stderr, added.stderr
    table = run_app(tmp_path, "data=pairs", f"data.path={saved}", "output.cells=true", name="table").ok().dir
    both = run_app(tmp_path, "data=cells", f"data.path=[{q(history)},{q(table / 'cells.parquet')}]", name="both")
    assert both.rc == 2 and "counts pairs of" in both.stderr, both.stderr
    alone = run_app(tmp_path, "data=pairs", f"data.path={saved}", name="alone").ok()  # on their own: read
    assert alone.summary["n_pairs_read"] == pq.read_metadata(saved).num_rows > 500


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("nan", "a sum that is not a finite number"),
        ("y2", "a cell's sum of y^2 below"),
        ("count", "ValueError: column 'count' holds double values, not integers"),  # 2.5 pairs read as 2 before
        ("column", "no column 'sum_y2'"),  # pyarrow's KeyError text before
        ("start", "no 'start' in its metadata"),
    ],
)
def test_a_damaged_stored_table_is_refused(tmp_path: Path, damage: str, said: str) -> None:
    import json

    import numpy as np
    import pyarrow as pa

    pairs = tmp_path / "pairs.parquet"
    pq.write_table(seed_pairs(4000, 8), pairs)
    table = run_app(tmp_path, "data=pairs", f"data.path={pairs}", "output.cells=true", name="t").ok().dir
    stored = pq.read_table(table / "cells.parquet")
    column = {"nan": "sum_y", "y2": "sum_y2", "count": "count"}.get(damage, "sum_y")
    values = stored.column(column).to_numpy().astype(np.float64)
    values[3] = {"nan": np.nan, "y2": 0.0, "count": 2.5}.get(damage, values[3])
    if damage in ("nan", "y2", "count"):
        stored = stored.set_column(stored.schema.get_field_index(column), column, pa.array(values))
    elif damage == "column":
        stored = stored.drop_columns(["sum_y2"])
    else:
        own = json.loads(stored.schema.metadata[b"gpu_hpi"])
        stored = stored.replace_schema_metadata({"gpu_hpi": json.dumps({k: v for k, v in own.items() if k != "start"})})
    damaged = tmp_path / "damaged.parquet"
    pq.write_table(stored, damaged)
    run = run_app(tmp_path, "data=cells", f"data.path={damaged}", name="d")
    assert run.rc == 2 and f"damaged cell table ({said}" in run.stderr, run.stderr
