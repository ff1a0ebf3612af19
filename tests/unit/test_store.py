"""Stored cell tables: cells.parquet (save_cells / load_cells / combine_tables), `output.cells=true`,
`data=cells` and `data.add_cells` on the command line.

The reference is always the same pairs in one piece: the index of merged tables (whose calendars
differ) must equal the index of the union of their pairs, through the library and through the CLI.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import START_MONTH, Run, month_labels, month_starts, q, run_app

import gpu_hpi
from gpu_hpi.data.calendar import Calendar
from gpu_hpi.io.store import cell_files, combine_tables, load_cells, save_cells
from gpu_hpi.synthetic import SyntheticMarket

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")

CPU = gpu_hpi.resolve_backend("cpu")
PRICE_SUMS = ("p_prev", "p_recent", "p_prev2", "p_recent2", "p_cross")
MEANINGS = {
    "y": "log(price_recent / price_prev)",
    "y2": "y^2",
    "p_prev": "price_prev",
    "p_recent": "price_recent",
    "p_prev2": "price_prev^2",
    "p_recent2": "price_recent^2",
    "p_cross": "price_prev * price_recent",
}
META_KEYS = {"format", "version", "periodicity", "start", "n_periods", "group_label_type", "groups", "sums", "dropped"}

# The update scenario: 60 months 2014-01..2018-12; the old pairs lie in 2014-01..2016-06 (30 months),
# the new ones in 2015-01..2018-12 (48 months); pairs inside the overlap go to either side. Group 0
# has old pairs only, group 3 (a new region) new pairs only, groups 1 and 2 both.
T_ALL, OLD_LAST, NEW_FIRST, N_GROUPS = 60, 29, 12, 4
BASE = "2016-03"  # inside every group's pairs (period 26)
PRICE_COLUMNS = ("data.columns.price_prev=PrevPrice", "data.columns.price_recent=RecentPrice")


# --------------------------------------------------------------------------------------------------
# helpers


@dataclass
class Split:
    """Pairs (periods relative to 2014-01) and which part (1: old, 2: new) each belongs to."""

    group: np.ndarray
    prev: np.ndarray
    recent: np.ndarray
    y: np.ndarray
    p0: np.ndarray
    p1: np.ndarray
    part: np.ndarray

    def take(self, mask: Any = None, offset: int = 0) -> dict[str, np.ndarray]:
        m = np.ones(self.y.shape, dtype=bool) if mask is None else mask
        return {
            "group": self.group[m],
            "prev": self.prev[m] - offset,
            "recent": self.recent[m] - offset,
            "y": self.y[m],
            "price_prev": self.p0[m],
            "price_recent": self.p1[m],
        }

    def frame(self, mask: Any = None) -> pd.DataFrame:
        d = self.take(mask)
        return pd.DataFrame(
            {
                "group_id": d["group"],
                "PrevYearMonth": month_starts(d["prev"], day=15),
                "RecentYearMonth": month_starts(d["recent"]),
                "LogPriceDiff": d["y"],
                "PrevPrice": d["price_prev"],
                "RecentPrice": d["price_recent"],
            }
        )


def make_split(n: int = 40_000, seed: int = 20240401, n_invalid: tuple[int, int] = (3, 5)) -> Split:
    rng = np.random.default_rng(seed)
    true = np.cumsum(rng.normal(0.004, 0.01, (N_GROUPS, T_ALL)), axis=1)
    group = rng.integers(0, N_GROUPS, n)
    lo = np.where(group == 3, NEW_FIRST, 0)
    hi = np.where(group == 0, OLD_LAST, T_ALL - 1)
    hold = np.minimum(rng.geometric(1 / 10, n), 20)
    prev = lo + (rng.random(n) * (hi - lo + 1 - hold)).astype(np.int64)
    recent = prev + hold
    # a chain of consecutive months in every group, so that every period of its span is identified
    chains = [(0, 0, OLD_LAST), (1, 0, T_ALL - 1), (2, 0, T_ALL - 1), (3, NEW_FIRST, T_ALL - 1)]
    for g, a, b in chains:
        steps = np.arange(a, b)
        group = np.concatenate([group, np.full(steps.size, g)])
        prev = np.concatenate([prev, steps])
        recent = np.concatenate([recent, steps + 1])
    fits_old = (recent <= OLD_LAST) & (group != 3)
    fits_new = (prev >= NEW_FIRST) & (group != 0)
    keep = fits_old | fits_new  # pairs spanning both windows belong to neither
    group, prev, recent, fits_old, fits_new = (a[keep] for a in (group, prev, recent, fits_old, fits_new))
    m = group.size
    part = np.where(fits_old & fits_new, np.where(rng.random(m) < 0.5, 1, 2), np.where(fits_old, 1, 2))
    y = true[group, recent] - true[group, prev] + rng.normal(0, 0.05, m)
    p0 = np.exp(rng.normal(12.0, 0.4, m))
    p1 = p0 * np.exp(y + rng.normal(0, 0.01, m))
    # a few pairs with a non-finite y (dropped and counted), away from the chains' window ends
    for k, count in zip((1, 2), n_invalid, strict=True):
        (rows,) = np.nonzero((part == k) & (prev > NEW_FIRST) & (recent < OLD_LAST))
        y[rng.choice(rows, count, replace=False)] = np.nan
    order = rng.permutation(m)
    return Split(group[order], prev[order], recent[order], y[order], p0[order], p1[order], part[order])


def table_of(d: dict[str, np.ndarray], n_periods: int, prices: bool = True, group: Any = None) -> gpu_hpi.CellTable:
    pairs = gpu_hpi.prepare_pairs(
        d["prev"],
        d["recent"],
        d["y"],
        d["group"] if group is None else group,
        n_periods=n_periods,
        backend=CPU,
        price_prev=d["price_prev"] if prices else None,
        price_recent=d["price_recent"] if prices else None,
    )
    return gpu_hpi.build_cell_table(pairs, CPU)


def expected(split: Split, method: str = "bmn", base: int = 0) -> pd.DataFrame:
    """The library's index of all the pairs over the 60 months."""
    d = split.take()
    return gpu_hpi.estimate_index(
        d["prev"],
        d["recent"],
        d["y"],
        d["group"],
        n_periods=T_ALL,
        backend="cpu",
        price_prev=d["price_prev"],
        price_recent=d["price_recent"],
        period_labels=month_labels(np.arange(START_MONTH, START_MONTH + T_ALL)),
        method=method,
        base_period=base,
    ).to_frame()


def assert_index_equal(got: pd.DataFrame, want: pd.DataFrame, atol: float = 1e-10) -> None:
    """Same rows; log index and se to atol, the other floats relative to it; pair counts exactly."""
    assert list(got.columns) == list(want.columns)
    got = got.sort_values(["group", "period"], kind="stable").reset_index(drop=True)
    want = want.sort_values(["group", "period"], kind="stable").reset_index(drop=True)
    assert got["group"].astype(str).tolist() == want["group"].astype(str).tolist()
    assert got["period"].astype(str).tolist() == want["period"].astype(str).tolist()
    np.testing.assert_array_equal(got["n_pairs"].to_numpy(), want["n_pairs"].to_numpy())
    for col in ("log_index", "se"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=0, atol=atol, err_msg=col)
    for col in ("index", "ci_low", "ci_high"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=atol, err_msg=col)
    assert np.isfinite(got["log_index"].to_numpy(float)).sum() > 0.5 * len(got)  # not a comparison of NaNs


def cells_frame(table: gpu_hpi.CellTable) -> pd.DataFrame:
    host = table.to_host()
    frame = pd.DataFrame(
        {
            "label": np.asarray(host.group_labels).astype(str)[host.group],
            "prev": host.prev,
            "recent": host.recent,
            "count": host.count,
            **{f"sum_{k}": v for k, v in host.sums.items()},
        }
    )
    return frame.sort_values(["label", "prev", "recent"], kind="stable").reset_index(drop=True)


def assert_tables_equal(a: gpu_hpi.CellTable, b: gpu_hpi.CellTable, exact: bool = False) -> None:
    """Same cells, labels, counts and drop counts; sums bit for bit (exact) or to 1e-12 of their scale."""
    assert a.n_periods == b.n_periods
    assert [str(v) for v in a.group_labels] == [str(v) for v in b.group_labels]
    assert a.group_labels.dtype.kind == b.group_labels.dtype.kind
    assert sorted(a.sums) == sorted(b.sums)
    assert a.dropped == b.dropped
    fa, fb = cells_frame(a), cells_frame(b)
    assert len(fa) == len(fb) > 0
    for col in ("label", "prev", "recent", "count"):
        np.testing.assert_array_equal(fa[col].to_numpy(), fb[col].to_numpy(), err_msg=col)
    for k in a.sums:
        x, y = fa[f"sum_{k}"].to_numpy(), fb[f"sum_{k}"].to_numpy()
        if exact:
            np.testing.assert_array_equal(x, y, err_msg=k)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * np.abs(y).max(), err_msg=k)


def metadata(path: Path) -> dict[str, Any]:
    return json.loads(pq.read_schema(path).metadata[b"gpu_hpi"])


def rewrite(src: Path, dst: Path, meta: dict[str, Any] | None = None, raw: str | None = None, edit: Any = None) -> Path:
    """A copy of a cells file with other metadata (a dict, or raw text) and/or edited columns."""
    arrow = pq.read_table(src)
    if edit is not None:
        arrow = edit(arrow)
    text = raw if raw is not None else json.dumps(meta if meta is not None else metadata(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(arrow.replace_schema_metadata({"gpu_hpi": text}), dst)
    return dst


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


# --------------------------------------------------------------------------------------------------
# 1. the library: save_cells / load_cells


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
# 2. merged tables = the union of their pairs (library)


@pytest.fixture(scope="module")
def split() -> Split:
    return make_split()


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
# 4. (library) files that are not cell tables: DataError, never another exception


def _edit_prev_equal_recent(arrow: pa.Table) -> pa.Table:
    prev = arrow.column("prev").to_numpy().copy()
    prev[3] = arrow.column("recent").to_numpy()[3]
    return arrow.set_column(arrow.column_names.index("prev"), "prev", pa.array(prev))


def _meta(**changes: Any) -> Any:
    def make(meta: dict[str, Any]) -> dict[str, Any]:
        return {**meta, **changes}

    return make


MALFORMED = [
    pytest.param("random", None, "cannot read cell table", id="random-bytes"),
    pytest.param("pairs", None, "not a gpu_hpi cell table", id="plain-parquet"),
    pytest.param("badjson", None, "not a gpu_hpi cell table", id="metadata-not-json"),
    pytest.param("raw", '"gpu_hpi.cells"', "not a gpu_hpi cell table", id="metadata-a-string"),
    pytest.param("raw", "[1, 2]", "not a gpu_hpi cell table", id="metadata-a-list"),
    pytest.param("meta", _meta(format="other.cells"), "not a gpu_hpi cell table", id="other-format"),
    pytest.param("meta", _meta(version=99), "version 99", id="version-99"),
    pytest.param("meta", _meta(sums={"y": "log(price_recent / price_prev) * 100", "y2": "y^2"}), "meanings", id="y%"),
    pytest.param("meta", _meta(sums={"y": "log(price_recent / price_prev)"}), "meanings", id="no-y2"),
    pytest.param("meta", _meta(sums=["y", "y2"]), "meanings", id="sums-a-list"),
    pytest.param("meta", _meta(dropped=[1, 2]), "damaged", id="dropped-a-list"),
    pytest.param("meta", _meta(dropped={"nonfinite_y": "many"}), "damaged", id="dropped-not-a-count"),
    pytest.param("meta", _meta(periodicity="day"), "damaged", id="periodicity-day"),
    pytest.param("meta", _meta(start="yesterday"), "damaged", id="bad-start"),
    pytest.param("meta", _meta(n_periods=5), "damaged", id="cells-beyond-window"),
    pytest.param("meta", _meta(groups=["0", "1"]), "damaged", id="unknown-group"),
    pytest.param("meta", _meta(groups=["0", "0", "1", "2"]), "damaged", id="duplicate-groups"),
    pytest.param("meta", _meta(group_label_type="int", groups=["a", "b", "c"]), "damaged", id="int-type-text-ids"),
    pytest.param("edit", _edit_prev_equal_recent, "damaged", id="prev-equal-recent"),
    pytest.param("edit", lambda a: a.drop_columns(["sum_y2"]), "damaged", id="missing-column"),
    pytest.param("edit", lambda a: pa.concat_tables([a, a.slice(0, 1)]), "appears twice", id="duplicate-cell"),
]


def malformed_file(kind: str, arg: Any, good: Path, dst: Path, split: Split) -> Path:
    if kind == "random":
        dst.write_bytes(np.random.default_rng(1).bytes(4096))
    elif kind == "pairs":
        split.frame(split.part == 1).to_parquet(dst, index=False)
    elif kind == "badjson":
        rewrite(good, dst, raw="{not json")
    elif kind == "raw":
        rewrite(good, dst, raw=arg)
    elif kind == "meta":
        rewrite(good, dst, meta=arg(metadata(good)))
    else:
        rewrite(good, dst, edit=arg)
    return dst


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


# --------------------------------------------------------------------------------------------------
# 2.-3. the command line: output.cells, data.add_cells, data=cells


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
    assert metadata(runs.c.dir / "cells.parquet") == metadata(runs.a.dir / "cells.parquet")
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
        assert metadata(run.dir / "cells.parquet") == metadata(runs.a.dir / "cells.parquet")
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
# 4. (command line) files that are not cell tables, periodicities


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
# 5. what needs the pairs


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
# 6. size


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
