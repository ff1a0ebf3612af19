"""The cell table from DuckDB's grouped pairs (io/sql_pairs.py's helpers): the drop rules on the
cell key (data.rules) over the grouped rows, the per-pair counts the query made, and the groups'
labels and codes as the host readers make them."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.calendar import check_window
from ..data.cells import PRICE_SUMS, CellTable
from ..data.rules import VALUE_RULES, check_strict, failing
from ..errors import DataError
from .sql import SqlTable


def grouped_table(
    cells: dict[str, Any],
    grouped: bool,
    start: int | None,
    end: int | None,
    strict: bool,
    labels: np.ndarray | None = None,
) -> SqlTable:
    """The cell table from the grouped pairs: the rules on the cell key (DROP_REASONS' order, as
    pairs.invalid_masks) drop whole cells; the per-pair rules were counted by the query. labels:
    the groups to list (default: those of every dated pair)."""
    n = cells["n"]
    i, j = cells["i"], cells["j"]
    dated = ~(cells["i_null"] | cells["j_null"])
    if not dated.any():
        raise DataError("the input holds no pairs")
    # as the streaming reader: the window given, else the periods of every pair with both dates
    lo_all, hi_all = int(np.minimum(i, j)[dated].min()), int(np.maximum(i, j)[dated].max())
    lo = start if start is not None else (lo_all if end is None else min(lo_all, end - 1))
    hi = end if end is not None else max(hi_all, lo + 1)
    check_window(lo, hi)
    # the rules on the cell's key (data.rules, periods counted from the window's start), after the
    # readers' missing_period
    key = {"group": -cells["g_null"].astype(np.int64) if grouped else None, "prev": i - lo, "recent": j - lo}
    failed = ~dated
    dropped = {"missing_period": int(n[failed].sum())}
    for reason, mask in failing(np, key, hi - lo + 1).items():
        dropped[reason] = int(n[mask & ~failed].sum())
        failed |= mask
    ok = ~failed
    counted = [r.reason for r in VALUE_RULES if r.reason in cells]  # pair by pair, in the query
    for reason in counted:
        dropped[reason] = int(cells[reason][ok].sum())
    missing_period = dropped.pop("missing_period")
    dropped = {k: v for k, v in dropped.items() if v}
    if strict:
        check_strict(dropped)
    count = n - sum(cells[reason] for reason in counted)
    ok &= count > 0
    t = max(hi - lo + 1, 2)
    if not grouped:
        labels, codes = _no_groups(ok)
    elif labels is None:
        labels, codes = _group_codes(cells["g"], dated & ~cells["g_null"], ok)
    else:
        codes = group_codes(labels, cells["g"].filter(ok))
    prev, recent = i[ok] - lo, j[ok] - lo
    order = np.argsort((codes * t + prev) * t + recent, kind="stable")
    names = [k for k in ("y", "y2", *PRICE_SUMS) if k in cells]
    sums = {k: cells[k][ok][order] for k in names}
    table = CellTable(t, labels, codes[order], prev[order], recent[order], count[ok][order], sums, dropped)
    return SqlTable(lo, table, missing_period)


def _group_codes(groups: Any, present: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted labels, int64 code per kept cell): the labels are the groups of every pair with both
    periods, valid or not, as the streaming reader encodes them (a region whose pairs are all
    dropped is still listed, and skipped)."""
    labels = group_labels(groups.filter(present))
    return labels, group_codes(labels, groups.filter(ok))


def group_labels(groups: Any) -> np.ndarray:
    """Sorted distinct ids of an Arrow array of group ids without nulls, typed as
    pairs.encode_groups gives them (int64, float, else object)."""
    labels = np.unique(groups.to_numpy(zero_copy_only=False))
    if labels.dtype.kind in "iu" and not (labels.dtype.kind == "u" and labels.size and labels[-1] > 2**63 - 1):
        return labels.astype(np.int64)  # as encode_groups gives them (uint64 ids past 2^63 stay uint64)
    return labels if labels.dtype.kind == "f" else labels.astype(object)


def group_codes(labels: np.ndarray, groups: Any) -> np.ndarray:
    """int64 codes into `labels` of an Arrow array of group ids (each one of the labels, no nulls)."""
    return np.searchsorted(labels, groups.to_numpy(zero_copy_only=False)).astype(np.int64)


def _no_groups(ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(["ALL"], dtype=object), np.zeros(int(ok.sum()), dtype=np.int64)
