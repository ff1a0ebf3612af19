"""The drop rules of a pair, declared once, and the counting of what they drop (`add_counts`,
`check_strict`). Each rule is a reason and the conditions under which a pair fails it; every engine
states them from this declaration: the arrays (numpy or CuPy, `failing`), the CUDA kernel's C
(`c_condition`), DuckDB's SQL (`sql_condition`) and libcudf's columns (io.device_columns). A pair
is counted under the first reason it fails, in the declared order.

A condition is (column, op, operand): column and operand name a pair column ("group", "prev",
"recent", "y", "price_prev", "price_recent") or "T", the number of periods, or give a number; op
"nonfinite" takes no operand (NaN and +-inf). Group codes are -1 where the group is missing.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import DataError

Condition = tuple[str, str, Any]


@dataclass(frozen=True)
class DropRule:
    """A reason, and the conditions of which any one makes a pair fail it; `needs`: the columns it
    reads (a rule whose columns a pair set lacks does not apply, e.g. prices)."""

    reason: str
    any_of: tuple[Condition, ...]

    @property
    def needs(self) -> set[str]:
        return {c for column, _, operand in self.any_of for c in (column, operand) if c in COLUMNS}


COLUMNS = ("group", "prev", "recent", "y", "price_prev", "price_recent")
FLOATS = ("y", "price_prev", "price_recent")
MAX_ABS_Y = 20.72326583694641  # log(1e9)
# a price no house has in any currency (10^15); below it a cell's sums of squared prices stay finite
# (10^30 a pair) for any count of pairs
MAX_PRICE = 1e15

DROP_RULES = (
    DropRule("missing_group", (("group", "<", 0),)),
    DropRule(
        "period_out_of_range",
        (("prev", "<", 0), ("prev", ">=", "T"), ("recent", "<", 0), ("recent", ">=", "T")),
    ),
    DropRule("same_period", (("prev", "==", "recent"),)),  # e.g. two sales in one quarter by quarters
    DropRule("prev_not_before_recent", (("prev", ">", "recent"),)),
    DropRule(
        "invalid_price",
        (
            ("price_prev", "nonfinite", None),
            ("price_recent", "nonfinite", None),
            ("price_prev", "<=", 0),
            ("price_recent", "<=", 0),
        ),
    ),
    DropRule("absurd_price", (("price_prev", ">", MAX_PRICE), ("price_recent", ">", MAX_PRICE))),
    DropRule("nonfinite_y", (("y", "nonfinite", None),)),
    # a finite log ratio no market has (a price ratio beyond a billion: units or typing, not a market);
    # kept, it overflows the sums of y^2 and makes an infinite index
    DropRule("absurd_y", (("y", ">", MAX_ABS_Y), ("y", "<", -MAX_ABS_Y))),
)

# the rules on a pair's values (y, prices), not on its cell's key: a query grouped by cell counts
# them pair by pair (io/sql_pairs.py)
VALUE_RULES = tuple(rule for rule in DROP_RULES if rule.needs & set(FLOATS))

# every reason a pair can be dropped for, in the order counted: null periods (a reader's) first
DROP_REASONS = ("missing_period", *(rule.reason for rule in DROP_RULES))

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


def applicable(columns: Mapping[str, Any]) -> list[DropRule]:
    """The rules whose columns are all given (not None)."""
    return [rule for rule in DROP_RULES if all(columns.get(c) is not None for c in rule.needs)]


def violates(xp: Any, rule: DropRule, columns: Mapping[str, Any], t: int) -> Any:
    """bool mask of the rows failing this rule (whatever other rules they fail)."""

    def value(operand: Any) -> Any:
        return t if operand == "T" else columns[operand] if operand in COLUMNS else operand

    def holds(column: str, op: str, operand: Any) -> Any:
        if op == "nonfinite":
            return ~xp.isfinite(columns[column])
        return _COMPARE[op](columns[column], value(operand))

    return functools.reduce(operator.or_, (holds(*c) for c in rule.any_of))


def failing(xp: Any, columns: Mapping[str, Any], t: int) -> dict[str, Any]:
    """reason -> bool mask of the rows failing it and no earlier reason, for the rules whose
    columns are given (arrays of one namespace; T = t)."""
    masks: dict[str, Any] = {}
    seen = None
    for rule in applicable(columns):
        bad = violates(xp, rule, columns, t)
        masks[rule.reason] = bad if seen is None else bad & ~seen
        seen = bad if seen is None else seen | bad
    return masks


def c_condition(rule: DropRule, names: Mapping[str, str]) -> str:
    """The rule as a C expression over the variables `names` (column or "T" -> C name); nonfinite
    as `!(v - v == 0.0)`, which needs no math header under NVRTC."""

    def term(column: str, op: str, operand: Any) -> str:
        if op == "nonfinite":
            return f"!({names[column]} - {names[column]} == 0.0)"
        return f"{names[column]} {op} {names.get(operand, operand)}"

    return " || ".join(term(*c) for c in rule.any_of)


def sql_condition(rule: DropRule, names: Mapping[str, str]) -> str:
    """The rule as a SQL predicate over the columns `names` that is true where a pair fails it, a
    null value included (a null never passes a rule)."""

    def term(column: str, op: str, operand: Any) -> str:
        if op == "nonfinite":
            return f"NOT isfinite({names[column]})"
        compared = f"{names[column]} {'=' if op == '==' else op} {names.get(operand, operand)}"
        # DuckDB orders NaN above every number; a comparison with NaN is false elsewhere (IEEE)
        return f"({compared} AND NOT isnan({names[column]}))" if column in FLOATS else compared

    return f"coalesce({' OR '.join(term(*c) for c in rule.any_of)}, true)"


def add_counts(total: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    """Sum two reason -> count maps, keeping only non-zero counts; the readers' and pair makers'
    reasons first (as given), then DROP_REASONS in order."""
    keys = [k for k in {**total, **more} if k not in DROP_REASONS] + list(DROP_REASONS)
    return {k: total.get(k, 0) + more.get(k, 0) for k in keys if total.get(k, 0) + more.get(k, 0)}


def check_strict(dropped: dict[str, int]) -> None:
    """DataError naming every drop count, where data.strict=true refuses invalid pairs."""
    if dropped:
        detail = ", ".join(f"{k}={v}" for k, v in dropped.items())
        raise DataError(f"invalid pairs (strict mode): {detail}")


def rule(reason: str) -> DropRule:
    return next(r for r in DROP_RULES if r.reason == reason)
