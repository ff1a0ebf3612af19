"""options.py is the library's one list of option names: the numerical modules take theirs from it,
never from the command line's schema (config.py), which composes from the same enums."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gpu_hpi
from gpu_hpi import config, options
from gpu_hpi.data.calendar import Calendar
from gpu_hpi.errors import ConfigError

PACKAGE = Path(gpu_hpi.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the gpu_hpi modules a file imports."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            name = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_command_line_imports_the_schema() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if "gpu_hpi.config" in imported_modules(path)
    )
    allowed = ("__main__.py", "app/", "dask/")
    assert importers and all(name.startswith(allowed) for name in importers), importers


def test_the_schema_composes_from_the_library_options() -> None:
    assert config.MethodConfig.__mro__[1] is options.MethodTuning
    assert config.SolverConfig().name is options.SolverName.normal
    assert options.option_values(options.Periodicity) == ["week", "month", "quarter", "year"]


def test_the_library_refuses_names_outside_the_options() -> None:
    with pytest.raises(ConfigError, match=r"periodicity must be one of \['week', 'month', 'quarter', 'year'\]"):
        Calendar("fortnight", 0, 3)
    with pytest.raises(ConfigError, match=r"backend must be one of \['auto', 'cpu', 'gpu'\]"):
        gpu_hpi.resolve_backend("tpu")


def test_the_property_key_is_one_column_or_several() -> None:
    assert options.property_columns("parcel") == ["parcel"]
    assert options.property_columns(["a", "b", 3]) == ["a", "b", "3"]
    for value in (None, [], True, [None], {"a": 1}, ["a", ["b"]]):
        with pytest.raises(ConfigError, match=r"data\.columns\.property must name a column or a list of columns"):
            options.property_columns(value)
