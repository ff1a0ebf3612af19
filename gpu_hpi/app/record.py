"""The run record in summary.json ("run"): what reproducing and auditing a published index needs,
the inputs' fingerprints, the software's versions, the device, the command line and the composed
configuration. `python -m gpu_hpi $(the record's command_line)` runs the same job again."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
from typing import Any

import pyarrow.parquet as pq

from ..backend.core import Backend
from ..config import AppConfig, plain

PACKAGES = ("gpu_hpi", "numpy", "scipy", "pandas", "pyarrow", "duckdb", "hydra-core", "omegaconf")


def fingerprint(path: str) -> dict[str, Any]:
    """A file's identity: its resolved path, size, rows and a SHA-256 of its parquet footer (the
    schema, row groups and their statistics: what was read, without reading the data again) or,
    for other files, of its whole content."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    rows = None
    with open(path, "rb") as f:
        f.seek(max(size - 8, 0))
        tail = f.read(8)
        if size >= 12 and tail[4:] == b"PAR1":
            footer = int.from_bytes(tail[:4], "little")
            f.seek(max(size - 8 - footer, 0))
            digest.update(f.read(footer))
            hashed, rows = "parquet footer", int(pq.ParquetFile(path).metadata.num_rows)
        else:
            f.seek(0)
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
            hashed = "whole file"
    return {"path": os.path.realpath(path), "bytes": size, "rows": rows, "sha256": digest.hexdigest(), "of": hashed}


def market_fingerprint(data: Any) -> dict[str, Any]:
    """A synthetic market's identity, as a file's: the same options make the same pairs, so two
    tables of one market are counted once (data.allow_double_count aside)."""
    options = json.dumps(plain(data), sort_keys=True)
    return {
        "path": None,
        "synthetic": plain(data),
        "bytes": None,
        "sha256": hashlib.sha256(options.encode()).hexdigest(),
    }


def versions(backend: Backend) -> dict[str, Any]:
    """Python's and the packages' versions; on a GPU also CuPy's, pylibcudf's and RMM's (where the
    run imported them) and the CUDA driver's and runtime's."""
    return {"python": platform.python_version(), **_package_versions()} | backend.versions()


@functools.cache
def _package_versions() -> dict[str, str | None]:
    """The installed packages' versions, read once a process (from their metadata: ~10 ms)."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def run_record(
    cfg: AppConfig, inputs: list[dict[str, Any]], backend: Backend, command_line: list[str] | None
) -> dict[str, Any]:
    """summary.json's "run": the inputs' fingerprints, versions, device, command line (None for a
    library call) and the composed configuration."""
    return {
        "inputs": inputs,
        "versions": versions(backend),
        "device": backend.device,
        "command_line": command_line,
        "config": plain(cfg),
    }
