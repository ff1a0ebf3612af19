"""`gpu-hpi --help` (usage.py): every group's choices (no schema among them) and every option of
every data kind, as overrides that compose; bad overrides beside --help are refused in one line."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from helpers import main_in_process

from gpu_hpi import config as C

CONF = Path(C.config_dir())
DATA = {
    "synthetic": C.SyntheticDataConfig,
    "pairs": C.PairsDataConfig,
    "transactions": C.TransactionsDataConfig,
    "cells": C.CellsDataConfig,
}


def _fields(schema: type, prefix: str) -> set[str]:
    """Every leaf option of a schema, as dotted keys (data.columns.prev)."""
    keys: set[str] = set()
    for f in dataclasses.fields(schema):
        nested = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(nested):
            keys |= _fields(type(nested), f"{prefix}.{f.name}")
        else:
            keys.add(f"{prefix}.{f.name}")
    return keys


def _sections(text: str) -> dict[str, list[str]]:
    """The help's paragraphs by their first line's head (`data=pairs`, `Choices`, `Other options`)."""
    sections: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        lines = block.splitlines()
        sections[re.split(r"[ :(]", lines[0])[0]] = lines[1:]
    return sections


@pytest.fixture(scope="module")
def help_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    rc, out, err = main_in_process(["--help"], tmp_path_factory.mktemp("help"))
    assert (rc, err) == (0, ""), err
    return out


def test_help_lists_each_groups_choices_from_its_yaml_files_alone(help_text: str) -> None:
    choices = _sections(help_text)["Choices"]
    listed = {line.strip().split("=")[0]: line.strip().split("=")[1].split("|") for line in choices}
    for group in ("data", "method", "solver", "backend", "memory", "cluster"):
        assert sorted(listed[group]) == sorted(p.stem for p in (CONF / group).glob("*.yaml")), group
    assert [listed[g][0] for g in ("data", "method", "solver")] == ["synthetic", "bmn", "normal"]  # defaults first
    assert "schema" not in help_text.lower().replace("seed's schema", "")


@pytest.mark.parametrize("kind", sorted(DATA))
def test_help_lists_every_option_of_every_data_kind(help_text: str, kind: str) -> None:
    lines = _sections(help_text)[f"data={kind}"]
    shown = {line.split()[0].split("=")[0] for line in lines}
    assert shown == _fields(DATA[kind], "data") - {"data.kind"}, kind  # data.kind is what data=KIND sets
    if kind != "synthetic":
        assert any(line.split()[0] == "data.path=???" and "# required" in line for line in lines)


def test_help_lists_the_other_options_with_the_chosen_defaults(tmp_path: Path) -> None:
    rc, out, err = main_in_process(["method=robust", "solver.tol=1e-9", "--help"], tmp_path)
    assert rc == 0, err
    rest = {line.split()[0] for line in _sections(out)["Other"]}
    assert {"solver.tol=1e-09", "method.huber_c=1.345", "index.base_period=null", "progress=true"} <= rest
    assert _sections(out)["Choices"][1].strip().startswith("method=robust|")
    assert not any(k.startswith(("data.", "method.name", "solver.name", "hydra")) for k in rest)


def test_help_options_compose_as_shown(help_text: str, tmp_path: Path) -> None:
    """The overrides the help shows are accepted as written (their values round-trip)."""
    from helpers import compose_config

    sections = _sections(help_text)
    pairs = [line.split()[0] for line in sections["data=pairs"] if "???" not in line]
    others = [line.split()[0] for line in sections["Other"]]
    cfg = compose_config("data=pairs", "data.path=x.parquet", *pairs, *others)
    assert cfg.data.columns.prev == "PrevYearMonth" and cfg.solver.tol == 1e-13


@pytest.mark.parametrize("args", [["method=schema", "--help"], ["data.n_pairs=abc", "-h"]])
def test_bad_overrides_beside_help_are_refused_in_one_line(args: list[str], tmp_path: Path) -> None:
    rc, out, err = main_in_process(args, tmp_path)
    assert (rc, out) == (2, "") and err.startswith("gpu_hpi: error: ") and err.count("\n") == 1, err
