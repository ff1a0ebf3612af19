"""The index methods together (estimation/methods/__init__.py: fit_method), on the problems of
tests/methods_reference.py: without a group column every method gives the pooled index, the groups'
and the pooled index solved apart give the full fit's rows, bmn is the default, the iterative
solvers are refused."""

from __future__ import annotations

import numpy as np
import pytest
from methods_reference import (
    ALL_METHODS,
    BASE,
    CPU,
    T,
    estimate,
    fit_with_pairs,
    method_problem,
)

import gpu_hpi
from gpu_hpi.estimation.methods import MethodOptions

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


@pytest.mark.parametrize("name", list(ALL_METHODS))
def test_without_group_column_gives_the_pooled_index(name: str) -> None:
    p = method_problem(7, outliers=0.03, bad_prices=True)
    grouped = fit_with_pairs(p, ALL_METHODS[name], prices=True)
    kwargs = p.price_kwargs()
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, None, n_periods=T, backend=CPU, **kwargs)
    table = gpu_hpi.build_cell_table(pairs, CPU)
    single = gpu_hpi.fit_index(table, pairs=pairs, backend=CPU, base_period=BASE, method=ALL_METHODS[name])
    assert list(single.groups) == ["ALL"] and list(single.solver_info) == ["groups"]
    np.testing.assert_allclose(single.log_index[0], grouped.log_index[-1], atol=1e-12, rtol=0, equal_nan=True)
    np.testing.assert_allclose(single.se[0], grouped.se[-1], rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("name", list(ALL_METHODS))
def test_groups_and_pooled_solved_separately(name: str) -> None:
    """groups=False / pooled=False give the same rows as the full run."""
    p = method_problem(7, outliers=0.03)
    full = fit_with_pairs(p, ALL_METHODS[name], prices=True)
    kwargs = p.price_kwargs()
    pairs = gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, p.group, n_periods=T, backend=CPU, **kwargs)
    table = gpu_hpi.build_cell_table(pairs, CPU)
    for groups, rows in ((True, slice(None, -1)), (False, slice(-1, None))):
        part = gpu_hpi.fit_index(
            table,
            pairs=pairs,
            backend=CPU,
            base_period=BASE,
            method=ALL_METHODS[name],
            groups=groups,
            pooled=not groups,
        )
        assert list(part.groups) == list(full.groups[rows])
        np.testing.assert_allclose(part.log_index, full.log_index[rows], atol=1e-12, rtol=0, equal_nan=True)


def test_bmn_method_is_the_default() -> None:
    p = method_problem(1)
    default = gpu_hpi.estimate_index(p.prev, p.recent, p.y, p.group, n_periods=T, backend=CPU, base_period=BASE)
    for method in ("bmn", MethodOptions()):
        result = estimate(p, method)
        np.testing.assert_array_equal(result.log_index, default.log_index)
        np.testing.assert_array_equal(result.se, default.se)
        assert result.solver_info["groups"]["method"] == "bmn"


@pytest.mark.parametrize("method", ["case_shiller", "robust", "arithmetic"])
def test_iterative_solver_refused_for_methods(method: str) -> None:
    p = method_problem(1)
    with pytest.raises(gpu_hpi.ConfigError, match="solver=lsqr"):
        estimate(p, method, prices=True, solver="lsqr")
