"""The library entry points: pairs -> cell table -> identification -> solve -> IndexResult."""

from __future__ import annotations

import warnings
from operator import index as as_integer
from typing import Any

import numpy as np

from ..backend.core import Backend, as_backend
from ..data.cells import POOLED, CellTable, check_group_labels
from ..data.pairs import Pairs, align_groups, prepare_pairs
from ..data.tabulate import build_cell_table
from ..errors import ConfigError, DataError, IdentificationWarning
from .identify import identify
from .iterative import DEFAULT_TOL, OPERATORS, check_limits, iterative_beta
from .methods import MemoryPairs, MethodOptions, PairStore, fit_method
from .normal import SOLVERS, TableFit, fit_table
from .result import IndexResult


def fit_index(
    table: CellTable,
    *,
    pairs: Pairs | PairStore | None = None,
    backend: Backend | str = "auto",
    solver: str = "normal",
    base_period: int = 0,
    min_pairs: int | None = None,
    groups: bool = True,
    pooled: bool = True,
    period_labels: Any = None,
    tol: float = DEFAULT_TOL,
    iter_lim: int | None = None,
    operator: str = "auto",
    method: MethodOptions | str = "bmn",
) -> IndexResult:
    """Estimate per-group and/or pooled indices from a cell table.

    `solver="normal"` solves the exact normal equations from the table; "lsqr" / "lsmr" solve the
    sparse dummy-matrix least squares of `pairs` (required then, as arrays), with the same statistics, applying
    the matrix by column arithmetic (`operator="implicit"`), as an assembled sparse matrix ("matrix")
    or "auto": implicit on the GPU, the matrix on the CPU.
    `method`: "bmn" (ordinary least squares), "case_shiller", "robust" (needs `pairs`) or
    "arithmetic" (needs a table with prices), or MethodOptions for their options.
    A table with a single unnamed group ("ALL") yields just that index.
    pairs: the pairs the table was built from, as arrays (`Pairs`), or a store that keeps them
    elsewhere and makes the passes of the fits there (a Dask cluster's workers: `estimation.methods.PairStore`).
    """
    be = as_backend(backend)
    t = table.n_periods
    options = method if isinstance(method, MethodOptions) else MethodOptions(name=method)
    if solver not in SOLVERS:
        raise ConfigError(f"solver must be one of {list(SOLVERS)}, got {solver!r}")
    if operator not in OPERATORS:
        raise ConfigError(f"operator must be one of {list(OPERATORS)}, got {operator!r}")
    check_limits(tol, iter_lim)
    if solver != "normal" and options.name != "bmn":
        raise ConfigError(f"solver={solver} applies to method=bmn; method={options.name} solves from the table")
    store = MemoryPairs(_pairs_of(table, pairs), be) if isinstance(pairs, Pairs) else pairs
    in_process = store if isinstance(store, MemoryPairs) else None
    # the robust fit's passes run wherever the pairs are kept; the rest needs them in this process
    needs_arrays = solver != "normal" or (options.needs_pairs and options.name != "robust")
    if (needs_arrays and in_process is None) or (options.needs_pairs and store is None):
        what = f"solver={solver}" if solver != "normal" else f"method={options.name} ({options.stage2} stage 2)"
        raise ConfigError(f"{what} needs the pairs themselves, not only their cell table")
    try:  # a label such as "2017-11" is the command line's form (index_from_pairs); here a position
        base_period = as_integer(base_period)
        min_pairs = None if min_pairs is None else as_integer(min_pairs)
    except TypeError as exc:
        raise ConfigError(f"base_period (a position) and min_pairs must be integers: {exc}") from exc
    if not 0 <= base_period < t:
        raise ConfigError(f"base period {base_period} is outside the {t} periods")
    if not (groups or pooled):
        raise ConfigError("nothing to estimate: both the group indices and the pooled index are off")
    min_pairs = t if min_pairs is None else int(min_pairs)
    periods = np.arange(t) if period_labels is None else np.asarray(period_labels, dtype=object)
    if periods.shape != (t,):
        raise ConfigError(f"{periods.shape[0]} period labels given for {t} periods")

    solves = index_tables(table, groups, pooled)
    fits: list[tuple[np.ndarray, TableFit]] = []
    info: dict[str, dict[str, Any]] = {}
    for name, tab in solves:
        ident = identify(tab, base_period, min_pairs)
        info[name] = {"method": options.name, "solver": solver}
        if solver != "normal":
            arrays = in_process.arrays(pooled=name == "pooled")  # type: ignore[union-attr]  # checked above
            beta, iterations, reason = iterative_beta(
                arrays, ident, be, solver, tol=tol, iter_lim=iter_lim, operator=operator
            )
            info[name].update(iterations=iterations, stop_reason=reason)
            fit = fit_table(tab, ident, be, beta)
        else:
            try:
                fit, details = fit_method(tab, ident, be, options, store, pooled=name == "pooled")
            except np.linalg.LinAlgError as exc:  # weights too far apart for a factorization, if any are left
                raise DataError(
                    f"method={options.name}: the weighted fit of the {name} is singular ({exc}); "
                    "method=bmn fits these pairs"
                ) from exc
            info[name].update(details)
            if details.get("zero_weight_pairs"):
                warnings.warn(
                    "Case-Shiller stage 2 fits a residual variance that is not positive at some holding "
                    f"lengths, the shortest {details['zero_weight_from_holding']} periods ({name}): "
                    f"{details['zero_weight_pairs']:,} pairs get weight 0 and do not enter the index "
                    "(counted as zero_weight); method.quadratic=true or method.stage2=absolute may fit better",
                    IdentificationWarning,
                    stacklevel=2,
                )
        fits.append((tab.group_labels, fit))
    result = IndexResult.from_fits(fits, periods, base_period, min_pairs, info)
    _warn_unidentified(result, min_pairs)
    return result


def _pairs_of(table: CellTable, pairs: Pairs) -> Pairs:
    """The pairs with the table's group codes, refused where they cannot be the pairs the table was
    built from (the solvers would index out of range or fit other pairs: a silent wrong index)."""
    if pairs.n_periods != table.n_periods:
        raise DataError(f"the pairs span {pairs.n_periods} periods, their cell table {table.n_periods}")
    if pairs.group is None and not (table.n_groups == 1 and table.group_labels[0] == POOLED):
        raise DataError(
            f"the pairs have no groups, their cell table has {table.n_groups}: pass the pairs the table was built from"
        )
    if pairs.n_pairs < table.n_pairs:
        raise DataError(
            f"the cell table holds {table.n_pairs:,} pairs, more than the {pairs.n_pairs:,} given: "
            "pass the pairs the table was built from"
        )
    return align_groups(pairs, table.group_labels)


def index_tables(table: CellTable, groups: bool = True, pooled: bool = True) -> list[tuple[str, CellTable]]:
    """The tables whose groups are the rows of an IndexResult: ("groups", the table) where group
    indices are asked for (or the table is a single "ALL" group), then ("pooled", its pooled table)."""
    single = table.n_groups == 1 and table.group_labels[0] == POOLED
    if groups:  # the group rows beside the pooled index's
        check_group_labels(table.group_labels)
    solves: list[tuple[str, CellTable]] = []
    if groups or single:
        solves.append(("groups", table))
    if pooled and not single:
        solves.append(("pooled", table.pooled()))
    return solves


# the warning's words, which the command line replaces by its own (naming unidentified.csv)
UNIDENTIFIED = "(group, period) index values are not identified"


def _warn_unidentified(result: IndexResult, min_pairs: int) -> None:
    if result.skipped.any():
        names = ", ".join(map(str, result.groups[result.skipped][:10]))
        warnings.warn(
            f"{int(result.skipped.sum())} group(s) with fewer than {min_pairs} pairs skipped: {names}",
            IdentificationWarning,
            stacklevel=3,
        )
    missing = result.unidentified
    if len(missing):
        warnings.warn(
            f"{len(missing)} {UNIDENTIFIED} and set to NaN "
            f"(in {missing['group'].nunique()} group(s)); see IndexResult.unidentified",
            IdentificationWarning,
            stacklevel=3,
        )


def estimate_index(
    prev: Any,
    recent: Any,
    y: Any,
    group: Any = None,
    *,
    n_periods: int | None = None,
    backend: Backend | str = "auto",
    strict: bool = False,
    price_prev: Any = None,
    price_recent: Any = None,
    **options: Any,
) -> IndexResult:
    """Repeat-sales index from pair arrays in one call: validate, build the cell table, solve.

    prev / recent: integer periods of the earlier / later sale; y: log(P_recent / P_prev);
    group: optional region ids; price_prev / price_recent: sale prices (for method="arithmetic").
    `options` are those of `fit_index` (method, solver, base_period, min_pairs, groups, pooled,
    period_labels, tol, iter_lim, operator).
    """
    be = as_backend(backend)
    pairs = prepare_pairs(
        prev, recent, y, group, n_periods=n_periods, backend=be, price_prev=price_prev, price_recent=price_recent
    )
    table = build_cell_table(pairs, be, strict=strict)
    method = options.get("method", "bmn")
    method = method if isinstance(method, MethodOptions) else MethodOptions(name=method)
    needs_pairs = options.get("solver", "normal") != "normal" or method.needs_pairs
    return fit_index(table, pairs=pairs if needs_pairs else None, backend=be, **options)
