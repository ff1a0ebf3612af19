"""`backend_parity`: a GPU test written once for the array namespace, run on numpy and on CuPy.

The test body takes the backend as its first argument and returns what it computed; the decorator
runs it on the numpy backend (the reference) and on the `gpu` fixture's, and everything returned
must agree: arrays (moved to the host) and numbers within atol + rtol |numpy's| where they are
floats, exactly otherwise (integers, booleans, labels, NaN positions, drop counts); cell tables,
index results and other dataclasses field by field, dicts and sequences item by item."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

import gpu_hpi
from gpu_hpi.backend.core import to_host

CPU = gpu_hpi.resolve_backend("cpu")


def backend_parity(
    atol: float = 0.0, rtol: float = 1e-12, skip: tuple[str, ...] = ("solver_info",)
) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Decorator: see the module docstring. skip: dataclass fields and dict keys not compared (by
    default the solvers' iteration counts, which may differ by a step between the backends)."""

    def wrap(body: Callable[..., Any]) -> Callable[..., None]:
        params = list(inspect.signature(body).parameters.values())[1:]  # the backend is ours to give

        @functools.wraps(body)
        def test(gpu: Any, **kwargs: Any) -> None:
            want = body(CPU, **kwargs)
            got = body(gpu, **kwargs)
            assert_same_results(got, want, atol=atol, rtol=rtol, skip=skip)

        gpu_param = inspect.Parameter("gpu", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        test.__signature__ = inspect.Signature([gpu_param, *params])  # type: ignore[attr-defined]
        return test

    return wrap


def assert_same_results(
    got: Any, want: Any, *, atol: float, rtol: float, skip: tuple[str, ...] = (), where: str = "result"
) -> None:
    """got (from the device) agrees with want (from numpy); see the module docstring."""
    if dataclasses.is_dataclass(want) and not isinstance(want, type):
        assert type(got) is type(want), f"{where}: {type(got).__name__} vs {type(want).__name__}"
        for f in dataclasses.fields(want):
            if f.name not in skip:
                value = getattr(want, f.name)
                assert_same_results(
                    getattr(got, f.name), value, atol=atol, rtol=rtol, skip=skip, where=f"{where}.{f.name}"
                )
    elif isinstance(want, dict):
        assert set(got) == set(want), f"{where}: keys {sorted(got)} vs {sorted(want)}"
        for key in want:
            if key not in skip:
                assert_same_results(got[key], want[key], atol=atol, rtol=rtol, skip=skip, where=f"{where}[{key!r}]")
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), f"{where}: {len(got)} items vs {len(want)}"
        for k, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same_results(a, b, atol=atol, rtol=rtol, skip=skip, where=f"{where}[{k}]")
    elif want is None or isinstance(want, str | bool):
        assert got == want, f"{where}: {got!r} vs {want!r}"
    else:
        a, b = np.asarray(to_host(got)), np.asarray(to_host(want))
        assert a.shape == b.shape, f"{where}: shape {a.shape} vs {b.shape}"
        if b.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, atol=atol, rtol=rtol, equal_nan=True, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
