"""What reading an input gives the rest of the run (`Loaded`), and the input's period window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import FileDataConfig
from ..data.calendar import parse_period
from ..data.cells import CellTable
from ..data.pairs import Pairs
from ..errors import ConfigError
from ..synthetic import SyntheticMarket


@dataclass(frozen=True)
class Loaded:
    """What the input gave: the cell table (periods from the absolute period first_period), the
    pairs when kept (else None), drop counts of the reading stage, the synthetic market (if
    any) and extra summary entries."""

    table: CellTable
    first_period: int
    pairs: Pairs | None
    dropped: dict[str, int]
    market: SyntheticMarket | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # accuracy without the pairs in this process (Dask): (table, refit, base, folds, pooled) -> Accuracy
    cross_validate: Callable[..., Any] | None = None
    # the robust fit's passes over pairs kept elsewhere (Dask): (table, identification, pooled) -> passes
    pair_passes: Callable[..., Any] | None = None


def input_window(data: FileDataConfig, periodicity: str) -> tuple[int | None, int | None]:
    """(first, last) absolute periods of data.start / data.end (None where not given)."""
    start = None if data.start is None else parse_period(data.start, periodicity)
    end = None if data.end is None else parse_period(data.end, periodicity)
    if start is not None and end is not None and end < start:
        raise ConfigError(f"data.end={data.end} is before data.start={data.start}")
    return start, end
