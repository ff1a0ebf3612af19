"""The run's stages: the seconds each took, and the progress bar of a long read."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..backend.core import Backend
from ..errors import raise_stop


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str, backend: Backend | None = None) -> Iterator[None]:
        """Time the block as stage `name`; a stop the run received and dropped is raised at either end."""
        raise_stop()
        start = time.perf_counter()
        yield
        if backend is not None:
            backend.synchronize()
        self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start
        raise_stop()


def progress_bar(enabled: bool, total: int | None) -> Any:
    """A rich progress bar of rows read on stderr, only when it is a terminal."""
    if not (enabled and sys.stderr.isatty()):
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("reading pairs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    @contextlib.contextmanager
    def bar() -> Iterator[Any]:
        with progress:
            task = progress.add_task("rows", total=total)
            yield lambda n: progress.advance(task, n)

    return bar()
