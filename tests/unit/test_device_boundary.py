"""Where the code knows which device it runs on: the backend, the device readers, the kernels'
dispatch and the Dask GPU plugin. Everything else takes a Backend or an array namespace and runs
one path (docs/architecture.md, "The CPU/GPU boundary")."""

from __future__ import annotations

import ast
from pathlib import Path

import gpu_hpi

PACKAGE = Path(gpu_hpi.__file__).resolve().parent
DEVICE_LIBRARIES = {"cupy", "cupyx", "cudf", "pylibcudf", "rmm", "dask_cuda"}
ALLOWED = ("backend/", "io/device", "data/kernels.py", "dask/plugins.py", "dask/cluster.py")


def device_branches(path: Path) -> list[str]:
    """The places in a file's code (not its comments or docstrings) that ask which device runs:
    `.is_gpu`, `xp is np` / `xp is not np`, an import of a device library."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "is_gpu":
            found.append(f"is_gpu, line {node.lineno}")
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.Is | ast.IsNot) for op in node.ops):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Name) and o.id in ("np", "numpy") for o in operands):
                found.append(f"is np, line {node.lineno}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in DEVICE_LIBRARIES for m in modules) and not getattr(node, "level", 0):
                found.append(f"import, line {node.lineno}")
    return found


def test_only_the_boundary_branches_on_the_device() -> None:
    branching = {
        str(path.relative_to(PACKAGE)): device_branches(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if device_branches(path)
    }
    outside = {name: where for name, where in branching.items() if not name.startswith(ALLOWED)}
    assert branching and not outside, outside


def test_the_check_finds_each_kind_of_branch(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import cupy\nif backend.is_gpu:\n    pass\nif xp is not np:\n    pass\n'''xp is np, is_gpu'''\n")
    assert device_branches(source) == ["import, line 1", "is_gpu, line 2", "is np, line 4"]
