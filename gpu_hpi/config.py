"""Structured config schemas of the command line, registered in Hydra's ConfigStore, composed from
the option names and tunings of options.py (the library's own module; only the entry point, app/
and dask/ import this one).

Each `conf/<group>/<option>.yaml` names its schema in its defaults list, so that a bad override
(`solver=foo`, `data.n_pairs=abc`) fails when the config is composed, before any data is read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from .options import (
    BackendName,
    ClusterKind,
    FileFormat,
    GapFill,
    IntegerPeriods,
    MethodName,
    MethodTuning,
    Pairing,
    Periodicity,
    SeasonalAdjustment,
    SolverName,
    SolverOperator,
    Stage2,
    option_name,
)

__all__ = [  # the option names, re-exported for the command line's modules
    "BackendName",
    "ClusterKind",
    "FileFormat",
    "GapFill",
    "IntegerPeriods",
    "MethodName",
    "MethodTuning",
    "Pairing",
    "Periodicity",
    "SeasonalAdjustment",
    "SolverName",
    "SolverOperator",
    "Stage2",
    "option_name",
]


@dataclass
class ColumnsConfig:
    """Column names in the pairs file (the seed's by default); group: null for no group column."""

    group: str | None = "group_id"
    prev: str = "PrevYearMonth"
    recent: str = "RecentYearMonth"
    y: str | None = "LogPriceDiff"  # null: computed from the prices
    price_prev: str | None = None  # sale prices, for method=arithmetic
    price_recent: str | None = None


@dataclass
class SyntheticDataConfig:
    """A simulated market with a known true index (the embedded default)."""

    kind: str = "synthetic"
    n_pairs: int = 1_000_000
    n_periods: int = 123
    n_groups: int = 17
    start: str = "2014-01"
    seed: int = 20140101
    noise_sd: float = 0.1
    mean_holding: float = 30.0


@dataclass
class FileDataConfig:
    """What every input read from files has: the path (a file, a directory or a glob of parquet
    files), its format, the window, how integer periods read, the reading's batches and memory,
    whether invalid rows are an error, and stored cell tables to add."""

    kind: str = MISSING
    path: str = MISSING
    format: FileFormat = FileFormat.auto
    start: str | None = None  # first period of the window; inferred from the data when null
    end: str | None = None  # last period of the window; inferred when null
    integer_periods: IntegerPeriods = IntegerPeriods.index
    batch_rows: int = 1 << 21
    memory_limit: str | None = None  # host memory DuckDB may use on the CPU, e.g. 4GB (beyond: it spills)
    strict: bool = False  # invalid rows are an error instead of being dropped and counted
    add_cells: Any = None  # cell table(s) of earlier pairs (file, directory, glob or list) to add
    allow_double_count: bool = False  # add pairs or tables from files a stored table already counts


@dataclass
class PairsDataConfig(FileDataConfig):
    """A parquet or CSV file (or a directory / glob of parquet files) of repeat-sales pairs."""

    kind: str = "pairs"
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)


@dataclass
class SaleColumnsConfig:
    """Columns of a file of sale records; property: one name or a list forming a composite key."""

    property: Any = "property_id"
    date: str = "date"
    price: str = "price"
    group: str | None = "group_id"


@dataclass
class TransactionsDataConfig(FileDataConfig):
    """Sale records: pairs are made per property (pairing), with optional filters (null: off)."""

    kind: str = "transactions"
    columns: SaleColumnsConfig = field(default_factory=SaleColumnsConfig)
    pairing: Pairing = Pairing.consecutive
    min_holding: int | None = None  # periods
    max_holding: int | None = None
    max_annual_return: float | None = None  # |log return| per year
    max_robust_z: float | None = None  # |(y - median) / (1.4826 MAD)| within the group
    save_pairs: str | None = None  # write the pairs here (parquet: seed schema, prices, key, dates, source rows)


@dataclass
class CellsDataConfig:
    """Stored cell tables (cells.parquet of earlier runs): a file, a directory, a glob or a list."""

    kind: str = "cells"
    path: Any = MISSING
    allow_double_count: bool = False  # add tables that count pairs of the same input file


@dataclass
class SolverConfig:
    name: SolverName = SolverName.normal
    tol: float = 1e-13  # atol = btol of lsqr / lsmr (on the scaled problem; see the README)
    iter_lim: int | None = None
    operator: SolverOperator = SolverOperator.auto  # how lsqr / lsmr apply the dummy matrix


@dataclass
class BackendConfig:
    name: BackendName = BackendName.auto


@dataclass
class MemoryConfig:
    """RMM settings for the GPU (ignored, with a note, on the CPU). Sizes: bytes, '40GB'-style
    strings or a fraction of device memory such as '0.8'."""

    pool: bool = True
    initial_pool_size: str | None = None
    maximum_pool_size: str | None = None
    managed_memory: bool = False


@dataclass
class MethodConfig(MethodTuning):
    """bmn: OLS; case_shiller: interval-weighted (stage2 on e^2 or |e|, optional h^2 term);
    robust: Huber IRLS; arithmetic: Shiller's value-weighted index (optional interval weights)."""

    name: MethodName = MethodName.bmn
    stage2: Stage2 = Stage2.squared


@dataclass
class DiagnosticsConfig:
    """volatility: trailing window of the rolling s.d. of % changes; revision: refit as if each
    later period were the last (revision_regions: of the pooled index and the regions with the most
    pairs, at most that many); accuracy_folds: k-fold cross-validation (0: off; keeps the pairs
    in memory); in_sample_error / forecast_error: hpiR's accuracies, from the cell table;
    vintages: write every vintage's index; smooth_window: centred moving average as an extra index
    column (0: off)."""

    volatility_window: int = 3
    revision: bool = True
    # the revision study's regions: the pooled index and at most this many regions, those with the
    # most pairs (each region's study costs ~120 small refits; null: every region)
    revision_regions: int | None = 1000
    accuracy_folds: int = 0
    in_sample_error: bool = False  # each pair predicted by the full index (accuracy.csv, kind in_sample)
    forecast_error: bool = False  # each pair predicted by the index through the period before its sale
    vintages: bool = False  # vintages.parquet: the index as it stood after each period
    smooth_window: int = 0


@dataclass
class IndexConfig:
    periodicity: Periodicity = Periodicity.month
    base_period: str | None = None  # e.g. 2017-11; null: the first period
    groups: bool = True  # an index per group
    pooled: bool = True  # the all-groups index (group ALL)
    min_pairs: int | None = None  # groups with fewer pairs are skipped; null: number of periods
    fill: GapFill | None = None  # fill unestimated periods inside a series (flagged; null: leave NaN)
    seasonal_adjust: SeasonalAdjustment | None = None  # add log_index_sa / index_sa columns


@dataclass
class OutputConfig:
    csv: bool = True
    parquet: bool = True
    plot: bool = True
    plot_groups: int = 6  # group indices drawn beside the pooled one
    plot_regions: bool = False  # regions.png: a panel per region (up to 50), the pooled index behind
    plot_diagnostics: bool = False  # diagnostics.png: volatility and revision per period
    cells: bool = False  # also write cells.parquet, the reusable cell table (on with data.add_cells)
    ci_level: float = 0.95


@dataclass
class ClusterConfig:
    """Dask execution of data=pairs: none (single process), local (LocalCluster of processes),
    cuda (dask-cuda, one worker per GPU); address: a running scheduler (tcp://HOST:PORT, or
    tls://HOST:PORT with the CA, certificate and key files), which must answer within timeout."""

    kind: ClusterKind = ClusterKind.none
    address: str | None = None
    n_workers: int | None = None  # null: Dask's default (local) or one per GPU (cuda)
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    timeout: float = 10.0  # seconds the scheduler at `address` has to answer
    tls_ca_file: str | None = None  # PEM files of a tls:// address: the CA that signed the scheduler's
    tls_cert: str | None = None  # certificate, this client's certificate and its private key
    tls_key: str | None = None


@dataclass
class AppConfig:
    data: Any = MISSING  # one of the data schemas above (SyntheticDataConfig, FileDataConfig's, CellsDataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    progress: bool = True  # progress bar on stderr (only when it is a terminal)
    debug: bool = False  # full tracebacks instead of one-line errors


def register_configs() -> None:
    """The schemas in Hydra's ConfigStore, once a process (storing them again costs 15-40 ms)."""
    from hydra.core.config_store import ConfigStore  # here: the library imports this module's enums

    cs = ConfigStore.instance()
    if "app_schema.yaml" in cs.repo:
        return
    # the schemas live in a group of their own (schema/...), which no override names: a group's
    # choices are its yaml files alone (`method=schema` is refused as an unknown option), and each
    # yaml file extends its schema from its defaults list (`- /schema/method@_here_`)
    cs.store(name="app_schema", node=AppConfig)
    data: dict[str, type] = {
        "synthetic": SyntheticDataConfig,
        "pairs": PairsDataConfig,
        "transactions": TransactionsDataConfig,
        "cells": CellsDataConfig,
    }
    for kind, node in data.items():
        cs.store(group="schema/data", name=kind, node=node)
    groups: dict[str, type] = {
        "solver": SolverConfig,
        "backend": BackendConfig,
        "memory": MemoryConfig,
        "method": MethodConfig,
        "cluster": ClusterConfig,
    }
    for group, node in groups.items():
        cs.store(group="schema", name=group, node=node)


def config_dir() -> str:
    """conf/ shipped inside the wheel (gpu_hpi/conf), or the repository's top-level conf/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"gpu_hpi's conf/ directory was not found next to {here}")


def plain(value: Any) -> Any:
    """A configuration (the schema's dataclasses) as plain JSON-ready values, enums by name: what
    OmegaConf.to_container(OmegaConf.structured(value), enum_to_str=True) gives, at a fraction of
    its cost (the run record and the shared reads' key take it every run)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
