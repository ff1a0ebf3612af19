"""What the input's footers refuse before the run's imports and the device: dates of an implausible
year in the parquet statistics (e.g. nanoseconds stored as milliseconds). Light on purpose (pyarrow
and the period rules only): the command line checks this before importing the run's modules or
starting the GPU's warm-up, so that such a refusal costs the interpreter and Hydra, not the run's
start-up (pipeline.run checks it again for callers in a process of their own: a footer read, ms)."""

from __future__ import annotations

from typing import Any

from ..config import option_name
from ..io.files import input_files
from ..io.periods import check_footer_dates


def check_input(data: Any) -> None:
    """DataError for implausible dates in the parquet statistics of the data group's input (pairs:
    both period columns; sale records: the date), before any column is read."""
    if data.kind == "pairs":
        names = [data.columns.prev, data.columns.recent]
    elif data.kind == "transactions":
        names = [data.columns.date]
    else:
        return
    files, fmt = input_files(str(data.path), option_name(data.format))
    if fmt == "parquet":
        check_footer_dates(files, [str(name) for name in names])


def uses_device_arrays(cfg: Any) -> bool:
    """Whether a GPU run of this configuration holds CuPy arrays: every run but a pair file reduced
    to its cell table on the device and fitted from the table (bmn, Case-Shiller's squared stage
    2), which is libcudf's work alone. A hint for the warm-up (whether to import CuPy): a wrong
    guess costs time, never a result."""
    method = option_name(cfg.method.name)
    table_only = (
        cfg.data.kind == "pairs"
        and option_name(cfg.solver.name) == "normal"
        and (method == "bmn" or (method == "case_shiller" and option_name(cfg.method.stage2) == "squared"))
        and not cfg.diagnostics.accuracy_folds
        and option_name(cfg.cluster.kind) == "none"
        and not cfg.cluster.address
        and cfg.data.columns.price_prev is None
    )
    return not table_only
