"""Files: paths, directories and globs of parquet or CSV parts, their readers in batches, the
plan of which row groups to read together, and outputs written atomically."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import DataError


def expand_path(path: str, recursive: bool = True) -> list[str]:
    """A file, a directory (its .parquet files, in subfolders too if recursive) or a glob -> the
    files, sorted; DataError when there are none."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        pattern = os.path.join(path, "**", "*.parquet") if recursive else os.path.join(path, "*.parquet")
        files = sorted(glob.glob(pattern, recursive=recursive))
        if not files:
            raise DataError(f"no .parquet files in directory {path}")
        return files
    if any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
        if not files:
            raise DataError(f"no files match {path}")
        return files
    if os.path.isfile(path):
        return [path]
    raise DataError(f"no such file: {path}")


def input_files(path: str, fmt: str = "auto") -> tuple[list[str], str]:
    """The files of an input path and their format (parquet or csv), told by their content (a
    parquet file starts with PAR1) rather than their names; DataError where there are none, where the
    files are of both formats or not of the one `fmt` names, or for several CSV files."""
    files = expand_path(path)
    # a parquet name on other content: a damaged parquet file, which its reader names as such
    parquet = [_is_parquet(f) or os.path.splitext(f)[1].lower() in (".parquet", ".pq") for f in files]
    found = "parquet" if all(parquet) else "csv" if not any(parquet) else None
    if found is None:
        mixed = files[parquet.index(False)]
        raise DataError(f"{path} mixes parquet files and other files (e.g. {mixed}); give one format")
    if fmt not in ("auto", found):
        what = "a parquet file" if found == "parquet" else "not a parquet file"
        raise DataError(f"{files[0]} is {what}: data.format={fmt} does not fit it (data.format=auto tells by content)")
    exts = {os.path.splitext(f)[1].lower() for f in files}
    if found == "csv" and fmt == "auto" and not exts <= {".csv", ".txt", ".gz"}:
        raise DataError(
            f"cannot tell the format of {path}: not parquet, nor named .csv; set data.format=csv to read it as CSV"
        )
    if found == "csv" and len(files) != 1:
        raise DataError(f"CSV input must be a single file, {path} matches {len(files)}")
    return files, found


def _is_parquet(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc


def parquet_file(path: str) -> pq.ParquetFile:
    """A parquet file's reader (metadata read); DataError naming the file if it is not parquet."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _parquet_batches(files: list[str], columns: list[str], batch_rows: int) -> Iterator[pa.Table | pa.RecordBatch]:
    """Whole row groups, gathered up to ~batch_rows rows per read (pyarrow decodes their columns in
    parallel, and nothing is read ahead beyond one batch: host memory stays bounded); row groups
    much larger than a batch are streamed in slices."""
    for path in files:
        f = parquet_file(path)
        check_columns(f.schema_arrow.names, columns, [path])
        pending: list[int] = []
        rows = 0
        try:
            for k in range(f.num_row_groups):
                n_k = f.metadata.row_group(k).num_rows
                if n_k > 2 * batch_rows:
                    if pending:
                        yield f.read_row_groups(pending, columns=columns)
                        pending, rows = [], 0
                    yield from f.iter_batches(batch_size=batch_rows, row_groups=[k], columns=columns)
                    continue
                pending.append(k)
                rows += n_k
                if rows >= batch_rows:
                    yield f.read_row_groups(pending, columns=columns)
                    pending, rows = [], 0
            if pending:
                yield f.read_row_groups(pending, columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from exc


def record_batches(
    files: list[str], fmt: str, columns: list[str], batch_rows: int, codes: Sequence[str] = ()
) -> Iterator[pa.Table | pa.RecordBatch]:
    """Batches (tables or record batches) of the wanted columns; DataError naming the file for
    unreadable input. codes: the columns of identifiers (the group, the property key), which a CSV
    file gives as written (see _csv_codes)."""
    if fmt == "parquet":
        yield from _parquet_batches(files, columns, batch_rows)
        return
    text = list(dict.fromkeys(name for name in codes if name in columns))  # the group may be a key part too
    try:
        reader = pacsv.open_csv(
            files[0],
            read_options=pacsv.ReadOptions(block_size=1 << 26),
            # empty fields are nulls (a missing date or price), not '' or a parse error
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True, column_types=dict.fromkeys(text, pa.string())
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read CSV file {files[0]}: {exc}") from exc
    check_columns(reader.schema.names, columns, files)
    as_integers: dict[str, bool] = {}
    try:
        for batch in reader:
            yield _csv_codes(batch.select(columns), text, as_integers, files[0])
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read CSV file {files[0]}: {exc}") from exc


# an integer as int64 writes it: no leading zero, sign or decimal point, at most 18 digits
PLAIN_INTEGER = r"^(0|-?[1-9][0-9]{0,17})$"


def _csv_codes(batch: pa.RecordBatch, text: list[str], as_integers: dict[str, bool], path: str) -> pa.RecordBatch:
    """A CSV batch with its identifier columns as integers where the file's first batch wrote each
    value as a plain integer, else as text: a type guessed from the values read '0012' as 12 (one
    property with '12') and 20-digit codes as rounded floats (neighbours merged)."""
    for name in text:
        i = batch.schema.get_field_index(name)
        column = batch.column(i)
        if column.null_count == len(column):
            continue  # nothing to tell by (a null is missing whatever the type)
        plain = pc.all(pc.match_substring_regex(column, PLAIN_INTEGER)).as_py()
        if as_integers.setdefault(name, plain) and not plain:
            raise DataError(
                f"column {name!r} of {path} holds codes written as integers and others, e.g. with leading zeros "
                "or more than 18 digits, that would read as other numbers (the form is told from the file's first "
                "64 MiB): write every code in one form, or the file as parquet with the column as text"
            )
        if as_integers[name]:
            batch = batch.set_column(i, name, column.cast(pa.int64()))
    return batch


def check_columns(found: list[str], wanted: list[str], files: list[str]) -> None:
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DataError(
            f"column(s) {', '.join(map(repr, missing))} not found in {files[0]}; columns found: {', '.join(found)}"
        )


def write_atomically(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """write(tmp) into a temporary name beside `path`, then rename: readers never see a partial file."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plan_reads(rows: list[int], max_rows: int) -> list[list[int]]:
    """Consecutive row groups (given their row counts) in sets of at most max_rows rows; a row
    group larger than that is a set of its own."""
    plan: list[list[int]] = []
    current: list[int] = []
    total = 0
    for k, n in enumerate(rows):
        if current and total + n > max_rows:
            plan.append(current)
            current, total = [], 0
        current.append(k)
        total += n
    if current:
        plan.append(current)
    return plan


# device bytes a decoded row takes beyond its columns: int32 periods twice, int32 group codes
DERIVED_ROW_BYTES = 12


def decoded_row_bytes(schema: pa.Schema, wanted: dict[str, str]) -> int:
    """Device bytes one row of the wanted columns takes decoded, plus what is derived from it;
    fixed-width types by their width, others (strings) counted as 32 bytes."""
    width = 0
    for name in wanted.values():
        kind = schema.field(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        width += kind.bit_width // 8 if numeric or pa.types.is_temporal(kind) else 32
    return width + DERIVED_ROW_BYTES


def write_csv(frame: Any, path: str | os.PathLike[str]) -> None:
    """A pandas frame as CSV by Arrow's writer (C++: pandas formats each number in Python; the write
    stage of 10,000 regions went from 11.3 s to 1.6-2.3 s on 2 cores, BENCHMARKS.md). Numbers at full precision (the
    shortest text that reads back as the same double, so the CSV holds what the parquet holds),
    NaN and None as empty fields, text quoted."""
    table = pa.table({str(name): pa.array(frame[name], from_pandas=True) for name in frame.columns})
    pacsv.write_csv(table, os.fspath(path))
