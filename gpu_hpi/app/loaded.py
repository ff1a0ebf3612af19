"""What reading an input gives the rest of the run (`Loaded`), and the input's period window."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import FileDataConfig
from ..data.calendar import parse_period
from ..data.cells import CellTable
from ..data.pairs import Pairs
from ..errors import ConfigError
from ..synthetic import SyntheticMarket


class KeptElsewhere(Protocol):
    """Pairs kept out of this process (dask.passes.DaskPairs): the passes of the robust fit and of
    cross-validation run where they are."""

    def arrays(self, pooled: bool) -> None: ...

    def robust_passes(self, table: CellTable, ident: Any, pooled: bool, c: float) -> Any: ...

    def folds(self, pooled: bool) -> Any: ...


@dataclass(frozen=True)
class Loaded:
    """What the input gave: the cell table (periods from the absolute period first_period), the
    pairs when kept in this process (else None; `kept`: on a cluster's workers), drop counts of the
    reading stage, the synthetic market (if any) and extra summary entries."""

    table: CellTable
    first_period: int
    pairs: Pairs | None
    dropped: dict[str, int]
    market: SyntheticMarket | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    kept: KeptElsewhere | None = None  # the pairs on a Dask cluster's workers (pairs is then None)
    # the fingerprints of the input files the table's pairs came from (stored tables: as recorded)
    lineage: list[dict[str, Any]] = field(default_factory=list)


def input_window(data: FileDataConfig, periodicity: str) -> tuple[int | None, int | None]:
    """(first, last) absolute periods of data.start / data.end (None where not given)."""
    start = None if data.start is None else parse_period(data.start, periodicity)
    end = None if data.end is None else parse_period(data.end, periodicity)
    if start is not None and end is not None and end < start:
        raise ConfigError(f"data.end={data.end} is before data.start={data.start}")
    if start is not None and end == start:  # the readers widened it to two periods, or refused it in other words
        raise ConfigError(
            f"data.start={data.start} and data.end={data.end} make a window of 1 period; an index needs at least 2"
        )
    return start, end
