"""What is refused before the run's imports and the device: an output that would be written over
an input (the run's files, data.save_pairs), and dates of an implausible year in the parquet
statistics (e.g. nanoseconds stored as milliseconds). Light on purpose (pyarrow and the period
rules only): the command line checks these before importing the run's modules or starting the
GPU's warm-up, so that a refusal costs the interpreter and Hydra, not the run's start-up
(pipeline.run checks them again for callers in a process of their own: a footer read, ms)."""

from __future__ import annotations

import csv
import fnmatch
import json
import os
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

from ..config import option_name
from ..errors import ConfigError, DataError
from ..io.files import check_columns, expand_path, input_files
from ..io.periods import check_footer_dates
from ..options import property_columns

UNIDENTIFIED_CSV = "unidentified.csv"  # group, period, reason of each index value left empty
# the command line's configuration in the run directory: .hydra/, and where it is staged until the
# outputs are committed (conf/config.yaml's hydra.output_subdir)
CONFIG_FOLDERS = (".hydra", ".hydra.next")


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
    check_file_columns(files, fmt, wanted_columns(data), [str(name) for name in names])
    if fmt == "parquet":
        check_footer_dates(files, [str(name) for name in names], data.start is not None)


def wanted_columns(data: Any) -> list[str]:
    """The columns the data group reads by name."""
    columns = data.columns
    if data.kind == "pairs":
        names = [columns.group, columns.prev, columns.recent, columns.y, columns.price_prev, columns.price_recent]
    else:
        names = [*property_columns(columns.property), columns.date, columns.price, columns.group]
    return [str(name) for name in names if name is not None]


def check_file_columns(files: list[str], fmt: str, wanted: list[str], periods: Sequence[str] = ()) -> None:
    """DataError naming a column the run reads that a file lacks (the files of a folder are read
    as one table, matched by name: a file without the column would be read as nulls, its rows
    dropped under another reason) or holds more than once (which one would be read is a guess: a
    parquet reader takes the first, a CSV reader refuses), or a period column (`periods`) that is
    text in one file and dates or numbers in another (read as one table, the dates became text
    that no period reads as)."""
    import pyarrow.parquet as pq

    kinds: dict[str, tuple[str, str]] = {}  # period column -> (its kind, the first file of it)
    for path in files:
        try:
            if fmt == "parquet":
                schema = pq.read_schema(path)
                names = schema.names
                for name in (n for n in periods if names.count(n) == 1):
                    kind, first = kinds.setdefault(name, (_kind(schema.field(name).type), path))
                    if _kind(schema.field(name).type) != kind:
                        raise DataError(
                            f"column {name!r} holds {kind} in {first} and {_kind(schema.field(name).type)} in {path}: "
                            "write it in one type in every file"
                        )
            else:
                with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
                    names = next(csv.reader(f), [])
        except (OSError, ValueError):  # pyarrow's ArrowInvalid too: the reader says why, in its words
            continue
        if fmt == "parquet":  # a CSV file's reader finds its own missing ones (it knows the delimiter)
            check_columns(names, wanted, [path])
        for name in wanted:
            if names.count(name) > 1:
                raise DataError(f"column {name!r} appears {names.count(name)} times in {path}; rename all but one")


def _kind(kind: Any) -> str:
    """A period column's type as the readers tell it: text, dates (timestamps and dates) or numbers."""
    import pyarrow as pa

    value = kind.value_type if pa.types.is_dictionary(kind) else kind
    if pa.types.is_string(value) or pa.types.is_large_string(value):
        return "text"
    return "dates" if pa.types.is_timestamp(value) or pa.types.is_date(value) else "numbers"


def run_outputs(cfg: Any) -> list[str]:
    """The names of the files a run of this configuration may write into its directory: those it
    writes, and unidentified.csv, which it writes where index values are not identified (known
    only once it has fitted)."""
    out, diag, data = cfg.output, cfg.diagnostics, cfg.data
    flags = {
        "index.csv": out.csv,
        "index.parquet": out.parquet,
        UNIDENTIFIED_CSV: True,
        "diagnostics.csv": True,
        "accuracy.csv": diag.accuracy_folds or diag.in_sample_error or diag.forecast_error,
        "vintages.parquet": diag.vintages,
        "cells.parquet": out.cells or bool(getattr(data, "add_cells", None)),
        "index.png": out.plot,
        "regions.png": out.plot_regions,
        "diagnostics.png": out.plot_diagnostics,
        "summary.json": True,
    }
    return [name for name, written in flags.items() if written]


def input_paths(data: Any, frame: bool = False) -> list[str]:
    """Every file the data group reads: the pairs or sale records (unless a frame in memory holds
    them), and stored cell tables."""
    paths: list[str] = []
    if data.kind in ("pairs", "transactions") and not frame:
        paths += input_files(str(data.path), option_name(data.format))[0]
    stored = data.path if data.kind == "cells" else getattr(data, "add_cells", None)
    if stored:
        items = [stored] if isinstance(stored, str) else list(stored)
        paths += [f for item in items for f in expand_path(str(item), recursive=False)]
    return paths


def input_patterns(data: Any) -> list[tuple[str, str, bool]]:
    """What the data group reads by folder or glob, not by file: (the option, the directory or
    the glob, whether a directory's subfolders are read too)."""
    found = []
    if data.kind in ("pairs", "transactions"):
        found.append(("data.path", str(data.path), True))
    stored = data.path if data.kind == "cells" else getattr(data, "add_cells", None)
    option = "data.path" if data.kind == "cells" else "data.add_cells"
    found += [(option, str(item), False) for item in ([stored] if isinstance(stored, str) else stored or [])]
    return [(o, os.path.expanduser(i), deep) for o, i, deep in found if os.path.isdir(i) or any(c in i for c in "*?[")]


def _read_by(path: str, item: str, deep: bool) -> bool:
    """Whether a read of `item` (a directory: its .parquet files, in subfolders too if deep; or
    a glob) would take the file at `path`."""
    real = os.path.realpath(path)
    if os.path.isdir(item):
        inside = _inside(real, Path(item)) if deep else os.path.dirname(real) == os.path.realpath(item)
        return inside and real.endswith(".parquet")
    if "**" in item:  # a recursive glob: below its fixed part, a name its last part matches
        fixed = os.path.dirname(item.split("**")[0].rstrip("/")) or "."
        return _inside(real, Path(fixed)) and fnmatch.fnmatch(os.path.basename(real), os.path.basename(item))
    return PurePath(os.path.abspath(path)).match(os.path.abspath(item))


def _other_runs_output(path: str) -> list[str]:
    """["the output NAME of the run in DIR"] where DIR's summary.json lists the file, else []."""
    folder, name = os.path.split(os.path.abspath(path))
    try:
        listed = json.loads(Path(folder, "summary.json").read_text()).get("outputs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f"the output {name} of the run in {folder}"] if name in listed else []


def unwritable_folder(folder: Path) -> str | None:
    """Why files cannot be made in `folder` (made with its parents where missing), or None."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not a folder this run may write in"
    return None


def check_outputs(cfg: Any, out_dir: Path, frame: bool = False) -> None:
    """ConfigError (DataError), before anything is read, where an output of the run would be
    written over one of its input files (the same file under any name: symlinks, hard links, globs
    resolved) or into a folder the run reads (the next read would take it in); where a directory
    stands under an output's name; or where data.save_pairs does not name a parquet file of its own
    that it can write (not an output of this run or another's, nor inside the run directory, whose
    files a rerun replaces)."""
    save_pairs = getattr(cfg.data, "save_pairs", None)
    if save_pairs and not str(save_pairs).lower().endswith(".parquet"):
        raise ConfigError(f"data.save_pairs={save_pairs} must name a .parquet file (the pairs are written as parquet)")
    outputs = {str(out_dir / name): f"the output {name} of hydra.run.dir={out_dir}" for name in run_outputs(cfg)}
    for name in run_outputs(cfg):  # found now, not when the renames of the commit fail half-way
        if (out_dir / name).is_dir():
            raise DataError(f"{out_dir / name} is a directory where the run writes its {name}; move it away")
    if save_pairs:
        saved = os.path.expanduser(str(save_pairs))
        taken = [what for path, what in outputs.items() if _same_file(saved, path)]
        taken += [f"in {name}/ of hydra.run.dir={out_dir}" for name in CONFIG_FOLDERS if _inside(saved, out_dir / name)]
        if _inside(saved, out_dir):
            taken.append(f"in hydra.run.dir={out_dir}, whose files a rerun replaces as a set")
        taken += [f"{what} (its summary.json lists it)" for what in _other_runs_output(saved)]
        if taken:
            raise ConfigError(f"data.save_pairs={save_pairs} is {taken[0]}; name another file")
        blocked = "a directory" if Path(saved).is_dir() else unwritable_folder(Path(saved).absolute().parent)
        if blocked:  # found now, not when the run's work is done
            raise DataError(f"cannot write data.save_pairs={save_pairs}: {blocked}")
        outputs[saved] = f"data.save_pairs={save_pairs}"
    inputs = input_paths(cfg.data, frame) if cfg.data.kind != "synthetic" else []
    for option, item, deep in [] if frame else input_patterns(cfg.data):  # the next read would take it in
        for path, what in outputs.items():
            if _read_by(path, item, deep):
                raise ConfigError(f"{what} would be read as input by {option}={item}; write elsewhere")
    for path, what in outputs.items():
        for read in inputs:
            if _same_file(path, read):
                raise ConfigError(f"{what} would overwrite the input {read}; write it elsewhere")


def check_run_files(cfg: Any, run_dir: Path, files: list[str], folders: list[str]) -> None:
    """ConfigError where an input of the run is one of the command line's own files in its run
    directory, which are written before the run reads anything: `files` (its lock, its log) and
    what `folders` hold (its configuration, staged, then replacing the earlier run's)."""
    own = [run_dir / name for name in files if (run_dir / name).exists()]
    own += [run_dir / name for name in folders if (run_dir / name).is_dir()]
    if not own or cfg.data.kind == "synthetic":  # a new directory holds none of them
        return
    for read in input_paths(cfg.data):
        for path in own:
            if (path.is_dir() and _inside(read, path)) or _same_file(str(path), read):
                raise ConfigError(
                    f"the input {read} is the run's own {path.name} in hydra.run.dir={run_dir}, "
                    "written before anything is read; choose another hydra.run.dir"
                )


def _inside(path: str, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:  # the output does not exist yet
        return False


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
