"""Arrow columns as the arrays of the regression: numbers as float64, group ids as numpy integers
or a pandas Series, and the pieces of several batches put together."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import DataError


def float_values(arr: pa.Array, name: str, where: str) -> np.ndarray:
    """A numeric column as float64 (NaN where null); DataError naming the input for other types."""
    if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type)):
        raise DataError(f"column {name!r} of {where} must be numeric, got {arr.type}")
    return arr.cast(pa.float64()).to_numpy(zero_copy_only=False)


def group_values(arr: pa.Array) -> Any:
    """Group ids: numpy integers, else a pandas Series (strings, categories; nulls become missing)."""
    if pa.types.is_nested(arr.type):  # lists, structs, maps: no region is named by one
        raise nested_groups(str(arr.type))
    if pa.types.is_integer(arr.type):
        # nullable integers stay integers (plain to_pandas would turn them into floats)
        return arr.to_numpy() if arr.null_count == 0 else arr.to_pandas(types_mapper=lambda _: pd.Int64Dtype())
    return arr.to_pandas()


def nested_groups(type_name: str) -> DataError:
    """The refusal of a region column of lists, structs or maps (as Arrow or DuckDB names the type)."""
    return DataError(f"the region column (data.columns.group) holds {type_name} values: give text or numbers")


def is_nested_sql(type_name: str) -> bool:
    """A DuckDB type of lists, arrays, structs, maps or unions."""
    return type_name.endswith("]") or type_name.startswith(("STRUCT", "MAP", "UNION"))


def concat_groups(groups: list[Any]) -> Any:
    if not groups:  # no batch: an input without rows, which the readers' callers refuse
        return np.empty(0, dtype=np.int64)
    if all(isinstance(g, np.ndarray) for g in groups):
        return np.concatenate(groups)
    return pd.concat([pd.Series(g) for g in groups], ignore_index=True)


def chunked(parts: list[Any]) -> pa.ChunkedArray:
    chunks: list[pa.Array] = []
    for part in parts:
        chunks.extend(part.chunks if isinstance(part, pa.ChunkedArray) else [part])
    return pa.chunked_array(chunks) if chunks else pa.chunked_array([], type=pa.int64())
