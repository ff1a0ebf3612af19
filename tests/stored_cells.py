"""Stored cell tables' test data: the update scenario (pairs split into an old and a new part, whose
tables' calendars differ), their cell tables and the library's index of all the pairs in one piece
(the reference of every merge), comparisons of tables and indices, and cells files damaged on
purpose. Shared by unit/io/test_store.py and unit/app/test_pipeline_cells.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import START_MONTH, month_labels, month_starts

import gpu_hpi

CPU = gpu_hpi.resolve_backend("cpu")
MEANINGS = {
    "y": "log(price_recent / price_prev)",
    "y2": "y^2",
    "p_prev": "price_prev",
    "p_recent": "price_recent",
    "p_prev2": "price_prev^2",
    "p_recent2": "price_recent^2",
    "p_cross": "price_prev * price_recent",
}


# The update scenario: 60 months 2014-01..2018-12; the old pairs lie in 2014-01..2016-06 (30 months),
# the new ones in 2015-01..2018-12 (48 months); pairs inside the overlap go to either side. Group 0
# has old pairs only, group 3 (a new region) new pairs only, groups 1 and 2 both.
T_ALL, OLD_LAST, NEW_FIRST, N_GROUPS = 60, 29, 12, 4


BASE = "2016-03"  # inside every group's pairs (period 26)


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
