"""The pair filters of sale records (data/pair_filters.py) as libcudf's operations, for the device
reader's pairs (io/device_sales.py): the same tests in the same order, medians exact as numpy's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..data.pair_filters import MAD_TO_SD, PairingRules
from . import device


def filter_pairs(
    ops: device.Ops, prev: Any, recent: Any, y: Any, group: Any, rules: PairingRules, labels: np.ndarray
) -> tuple[Any, dict[str, int]]:
    """(mask of the pairs kept, or None for all; reason -> count): data.pair_filters.filter_pairs."""
    dropped: dict[str, int] = {}
    hold = ops.binary(recent, prev, "SUB", ops.int32)
    tests = []
    if rules.min_holding is not None:
        tests.append(("holding_too_short", ops.compare(hold, "LESS", rules.min_holding)))
    if rules.max_holding is not None:
        tests.append(("holding_too_long", ops.compare(hold, "GREATER", rules.max_holding)))
    if rules.max_annual_return is not None:  # |y| * periods_per_year / hold, in that order
        annual = ops.binary(
            ops.binary(ops.unary(y, "ABS"), float(rules.periods_per_year), "MUL", ops.float64),
            hold,
            "TRUE_DIV",
            ops.float64,
        )
        tests.append(("extreme_return", ops.compare(annual, "GREATER", rules.max_annual_return)))
    ok = None

    def apply(reason: str, bad: Any) -> Any:
        """Count the pairs still kept that fail this test (each under its first), and drop them."""
        bad = bad if ok is None else ops.both(bad, ok)
        dropped[reason] = ops.count(bad)
        return ops.negate(bad) if ok is None else ops.both(ok, ops.negate(bad))

    for reason, bad in tests:
        ok = apply(reason, bad)
    if rules.max_robust_z is not None:  # over the pairs the other filters kept
        z = _robust_z(ops, y, group, ok, max(len(labels), 1))
        ok = apply("return_outlier", ops.compare(ops.unary(z, "ABS"), "GREATER", rules.max_robust_z))
    return ok, {k: v for k, v in dropped.items() if v}


def _robust_z(ops: device.Ops, y: Any, group: Any, ok: Any, n_groups: int) -> Any:
    """data.pair_filters.robust_z: (y - median) / (1.4826 MAD) within each group over the pairs kept
    (ok; None: all), 0 for pairs without a group. Medians by selection after a sort, computed on
    the host from the middle values exactly as numpy's median."""
    g = group if group is not None else ops.full(y.size(), 0, pa.int32())
    kept = ops.compare(g, "GREATER_EQUAL", 0)
    if ok is not None:
        kept = ops.both(kept, ok)
    gk, yk = ops.select([g, y], kept)
    gk, yk = ops.gather([gk, yk], ops.stable_order([gk, yk]))
    bounds = ops.bounds(gk, n_groups)
    median = _segment_medians(ops, yk, bounds)
    median_column = ops.from_host(np.nan_to_num(median))
    deviation = ops.unary(ops.binary(yk, ops.gather([median_column], gk)[0], "SUB", ops.float64), "ABS")
    deviation = ops.gather([deviation], ops.stable_order([gk, deviation]))[0]
    mad = _segment_medians(ops, deviation, bounds) * MAD_TO_SD
    g_any = ops.where(ops.compare(g, "LESS", 0), ops.scalar(0, pa.int32()), g)
    median_g, mad_g = ops.gather([median_column, ops.from_host(np.where(mad > 0, mad, 1.0))], g_any)
    z = ops.binary(ops.binary(y, median_g, "SUB", ops.float64), mad_g, "TRUE_DIV", ops.float64)
    return ops.where(ops.compare(g, "GREATER_EQUAL", 0), z, ops.scalar(0.0, pa.float64()))


def _segment_medians(ops: device.Ops, values: Any, bounds: np.ndarray) -> np.ndarray:
    """(S,) medians of values[bounds[s]:bounds[s+1]], each segment sorted (NaN where empty): the
    one or two middle values gathered to the host, averaged as numpy's median does."""
    lo, hi = bounds[:-1], bounds[1:]
    filled = hi > lo
    left = np.where(filled, lo + (hi - lo - 1) // 2, 0)
    right = np.where(filled, lo + (hi - lo) // 2, 0)
    if values.size() == 0:
        return np.full(lo.shape, np.nan)
    middle = ops.to_host(ops.gather([values], ops.from_host(np.concatenate([left, right]).astype(np.int32)))[0])
    a, b = middle[: lo.size], middle[lo.size :]
    return np.where(filled, np.mean(np.stack([a, b]), axis=0), np.nan)
