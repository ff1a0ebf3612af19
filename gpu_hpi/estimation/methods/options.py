"""The index methods' names and options."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ...options import MethodName, MethodTuning, Stage2

METHODS = tuple(m.value for m in MethodName)
STAGE2 = tuple(s.value for s in Stage2)
PAIR_METHODS = ("robust",)  # methods that need the pairs, not only their table


@dataclass(unsafe_hash=True)  # hashable as before (treated as immutable; the schema's base is not frozen)
class MethodOptions(MethodTuning):
    """An index method for the estimators: its name and stage2 as plain strings (the configuration
    holds them as enums), the numerical options of config.MethodTuning. stage2: "squared"
    regresses e^2 on the holding interval (weights 1 / fitted), "absolute" |e| (weights 1 /
    fitted^2)."""

    name: str = MethodName.bmn.value
    stage2: str = Stage2.squared.value

    @property
    def needs_pairs(self) -> bool:
        """True where a cell table is not enough: robust, and Case-Shiller's |e| stage 2."""
        return self.name in PAIR_METHODS or (self.name == "case_shiller" and self.stage2 == "absolute")

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ConfigError(f"method must be one of {list(METHODS)}, got {self.name!r}")
        if self.stage2 not in STAGE2:
            raise ConfigError(f"stage2 must be one of {list(STAGE2)}, got {self.stage2!r}")
        if not (self.huber_c > 0 and self.tol > 0 and self.max_iter >= 1):
            raise ConfigError(
                "method.huber_c and method.tol must be positive and method.max_iter at least 1, got "
                f"huber_c={self.huber_c}, tol={self.tol}, max_iter={self.max_iter}"
            )
