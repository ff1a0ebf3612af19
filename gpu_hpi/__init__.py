"""gpu_hpi: repeat-sales house price indices from hundreds of millions of pairs, on a GPU or a CPU."""

from .backend import Backend, resolve_backend
from .cells import CellTable, build_cell_table, merge_tables
from .errors import (
    BackendUnavailableError,
    ConfigError,
    ConvergenceWarning,
    DataError,
    GpuHpiError,
    IdentificationWarning,
)
from .estimate import estimate_index, fit_index
from .methods import MethodOptions
from .pairs import Pairs, prepare_pairs
from .result import IndexResult

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "CellTable",
    "ConfigError",
    "ConvergenceWarning",
    "DataError",
    "GpuHpiError",
    "IdentificationWarning",
    "IndexResult",
    "MethodOptions",
    "Pairs",
    "build_cell_table",
    "estimate_index",
    "fit_index",
    "merge_tables",
    "prepare_pairs",
    "resolve_backend",
]
