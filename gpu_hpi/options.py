"""The names of the library's options and its numerical tunings: the one list of every option's
allowed values, imported by the estimators, the backends, the calendar and the readers, and by the
command line's schema (config.py), which composes its config groups from these. The library
stands without Hydra: nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import ConfigError


class SolverName(str, Enum):
    normal = "normal"
    lsqr = "lsqr"
    lsmr = "lsmr"


class SolverOperator(str, Enum):
    auto = "auto"  # implicit on the GPU, matrix on the CPU (the faster there)
    implicit = "implicit"  # the dummy matrix applied by column arithmetic, never stored
    matrix = "matrix"  # assembled as CSR, with the CSR of its transpose


class BackendName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class MethodName(str, Enum):
    bmn = "bmn"
    case_shiller = "case_shiller"
    robust = "robust"
    arithmetic = "arithmetic"


class Stage2(str, Enum):
    squared = "squared"
    absolute = "absolute"


class Periodicity(str, Enum):
    week = "week"  # ISO weeks, labelled 2014-W01
    month = "month"
    quarter = "quarter"
    year = "year"


class GapFill(str, Enum):
    linear = "linear"  # interpolate the log index
    carry = "carry"  # the last estimate


class SeasonalAdjustment(str, Enum):
    stl = "stl"  # statsmodels' robust STL on the log index


class FileFormat(str, Enum):
    auto = "auto"
    parquet = "parquet"
    csv = "csv"


class IntegerPeriods(Enum):
    index = "index"  # 0 = data.start
    yyyymm = "yyyymm"  # 201401 = 2014-01


class Pairing(str, Enum):
    consecutive = "consecutive"
    all = "all"


class ClusterKind(str, Enum):
    none = "none"
    local = "local"
    cuda = "cuda"


@dataclass(kw_only=True)  # after the name and stage2 in the subclasses' positional arguments
class MethodTuning:
    """The methods' numerical options, declared once for the configuration (MethodConfig) and the
    estimators (estimation.methods.MethodOptions): quadratic: an h^2 term in Case-Shiller's stage 2;
    interval_weights: the arithmetic index with Case-Shiller weights; huber_c, max_iter, tol: the
    robust IRLS."""

    quadratic: bool = False
    interval_weights: bool = False
    huber_c: float = 1.345
    max_iter: int = 50
    tol: float = 1e-10


def option_name(value: Any) -> str:
    """An option's value as a plain string (an enum member's value, or the value itself)."""
    return str(value.value if hasattr(value, "value") else value)


def option_values(kind: type[Enum]) -> list[str]:
    """The allowed values of an option, e.g. option_values(Periodicity) -> ["week", "month", ...]."""
    return [str(member.value) for member in kind]


def property_columns(value: Any) -> list[str]:
    """data.columns.property as column names: one name, or several forming the key."""
    names = [value] if isinstance(value, str | int) else value
    if (
        isinstance(value, bool)
        or not isinstance(names, Sequence)
        or not names
        or any(isinstance(n, bool) or not isinstance(n, str | int) for n in names)
    ):
        raise ConfigError(f"data.columns.property must name a column or a list of columns, got {value!r}")
    return [str(n) for n in names]
