"""gpu_hpi: repeat-sales house price indices from hundreds of millions of pairs, on a GPU or a CPU.

The public names load their modules on first use (PEP 562), so that `import gpu_hpi.options` and
`python -m gpu_hpi --help` do not pay for numpy, pandas and scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app.library import RunResult, index_from_pairs, index_from_sales, run
    from .backend.core import Backend, resolve_backend
    from .data.cells import CellTable, merge_tables
    from .data.pairs import Pairs, prepare_pairs
    from .data.tabulate import build_cell_table
    from .errors import (
        BackendUnavailableError,
        ConfigError,
        ConvergenceWarning,
        DataError,
        GpuHpiError,
        IdentificationWarning,
    )
    from .estimation.api import estimate_index, fit_index
    from .estimation.methods import MethodOptions
    from .estimation.result import IndexResult

__version__ = "0.1.0"

_HOMES = {
    "Backend": "backend.core",
    "resolve_backend": "backend.core",
    "CellTable": "data.cells",
    "build_cell_table": "data.tabulate",
    "merge_tables": "data.cells",
    "BackendUnavailableError": "errors",
    "ConfigError": "errors",
    "ConvergenceWarning": "errors",
    "DataError": "errors",
    "GpuHpiError": "errors",
    "IdentificationWarning": "errors",
    "estimate_index": "estimation.api",
    "fit_index": "estimation.api",
    "MethodOptions": "estimation.methods",
    "Pairs": "data.pairs",
    "prepare_pairs": "data.pairs",
    "IndexResult": "estimation.result",
    "RunResult": "app.library",
    "index_from_pairs": "app.library",
    "index_from_sales": "app.library",
    "run": "app.library",
}
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
    "RunResult",
    "build_cell_table",
    "estimate_index",
    "fit_index",
    "index_from_pairs",
    "index_from_sales",
    "merge_tables",
    "prepare_pairs",
    "resolve_backend",
    "run",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value
        return value
    try:  # submodules used as attributes, e.g. gpu_hpi.estimation.methods
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists but one of its dependencies is missing: say which
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return [*globals(), *__all__]
