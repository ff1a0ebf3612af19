"""`gpu-hpi --help`: every choice of every group and every option of every data kind, as overrides
to copy, with their defaults and the comments of conf/'s yaml files.

Hydra's own help shows the composed configuration only (the synthetic data's options by default)
and lists the ConfigStore's entries as choices; this one composes each data kind in turn and
lists a group's choices from its yaml files alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

GROUPS = ("data", "method", "solver", "backend", "memory", "cluster")
# keys each group's choice sets (data=pairs sets data.kind): not options of their own
CHOSEN = {"data.kind", "method.name", "solver.name", "backend.name", "cluster.kind"}
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_]\w*):(?P<value>[^#]*?)(\s+#\s*(?P<comment>.*))?$")


def usage(config_dir: str, overrides: list[str]) -> str:
    """The help text; `overrides` (composable, checked by the caller) set the defaults shown for
    the groups other than data."""
    conf = Path(config_dir)
    with initialize_config_dir(config_dir=config_dir, version_base=None, job_name="gpu_hpi"):
        chosen = compose(config_name="config", overrides=overrides, return_hydra_config=True)
        choices = {g: str(chosen.hydra.runtime.choices[g]) for g in GROUPS}
        kinds = [choices["data"], *(k for k in _options(conf, "data") if k != choices["data"])]
        data = {k: compose(config_name="config", overrides=[f"data={k}"]).data for k in kinds}
    lines = [
        "usage: gpu-hpi [GROUP=CHOICE ...] [KEY=VALUE ...]    (the same as: python -m gpu_hpi ...)",
        "",
        "Repeat-sales house price indices. The outputs go to hydra.run.dir=DIR (default",
        "outputs/<date>/<time>); README.md explains every option.",
        "",
        "Choices (GROUP=CHOICE; the first one is the default):",
    ]
    for group in GROUPS:
        rest = [o for o in _options(conf, group) if o != choices[group]]
        lines.append(f"  {group}={'|'.join([choices[group], *rest])}")
    for kind in kinds:
        about = _about(conf / "data" / f"{kind}.yaml")
        lines += ["", f"data={kind}{' (the default)' if kind == choices['data'] else ''}: {about}"]
        lines += _options_lines(data[kind], "data", _comments(conf / "data" / f"{kind}.yaml"))
    lines += ["", "Other options (KEY=VALUE), with their defaults:"]
    comments = _comments(conf / "config.yaml")
    body = OmegaConf.masked_copy(chosen, [str(k) for k in chosen if k not in ("hydra", "data")])
    for key in body:
        group = str(key)
        notes = _comments(conf / group / f"{choices[group]}.yaml") if group in choices else comments.get(group, {})
        node = body[group]
        if isinstance(node, DictConfig):
            lines += _options_lines(node, group, notes)
        else:
            lines += _options_lines(OmegaConf.create({group: node}), "", comments)
    lines += [
        "",
        "Flags: --cfg job prints the configuration these options compose; --hydra-help lists Hydra's own.",
    ]
    return "\n".join(lines)


def _options(conf: Path, group: str) -> list[str]:
    """A group's choices: its yaml files (the schemas they extend are no choice)."""
    return sorted(p.stem for p in (conf / group).glob("*.yaml"))


def _about(path: Path) -> str:
    """The description at the head of a yaml file (its comment lines before `defaults:`), less
    its usage lines."""
    about = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("# ").strip()
        if text.startswith("Usage:") or text.startswith("python -m"):
            continue
        about.append(text)
    return " ".join(about)


def _comments(path: Path) -> dict[str, Any]:
    """The trailing comment of each key of a yaml file, nested as its keys are."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    if not path.is_file():
        return root
    for line in path.read_text().splitlines():
        m = _KEY.match(line)
        if not m or line.lstrip().startswith("-"):
            continue
        indent = len(m["indent"])
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        child: dict[str, Any] = {"#": m["comment"] or ""}
        parent[m["key"]] = child
        stack.append((indent, child))
    return root


def _options_lines(node: DictConfig, prefix: str, comments: dict[str, Any]) -> list[str]:
    """`  prefix.key=value   # comment` for every leaf of node."""
    values = OmegaConf.to_container(node, resolve=False, enum_to_str=True)
    rows: list[tuple[str, str]] = []

    def walk(value: Any, key: str, notes: dict[str, Any]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k), notes.get(str(k), {}))
            return
        if key in CHOSEN:
            return
        note = notes.get("#", "")
        if value == "???":
            note = "required" + (f"; {note}" if note else "")
        rows.append((f"{key}={_text(value)}", note))

    assert isinstance(values, dict)
    walk(values, prefix, comments)
    width = max((len(o) for o, _ in rows), default=0)
    return [f"  {o:<{width}}  # {n}".rstrip(" #") if n else f"  {o}" for o, n in rows]


def _text(value: Any) -> str:
    """A value as an override writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)
