"""No import cycles between facemotion's modules or its subpackages, and light entry points."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "facemotion").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every facemotion module ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules)
    resolved = set()
    for m in found:
        if m.split(".")[0] != "facemotion":
            continue
        while m not in modules and "." in m:
            m = m.rpartition(".")[0]
        resolved.add(m)
    return resolved


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def _graph(unit) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        for target in _imports(name, path, modules):
            a, b = unit(name), unit(target)
            # a module always imports its parent packages first: those edges are not cycles
            if a != b and not a.startswith(b + ".") and b != "facemotion":
                graph.setdefault(a, set()).add(b)
    return graph


def test_no_import_cycle_between_modules():
    assert _cycles(_graph(lambda m: m)) == []


def test_no_import_cycle_between_subpackages():
    # facemotion.export, facemotion.render, facemotion.animation, ... as units
    assert _cycles(_graph(lambda m: ".".join(m.split(".")[:2]))) == []


def test_a_missing_optional_package_names_its_extra(monkeypatch):
    import importlib.util

    import numpy as np
    import pytest

    from facemotion.animation import Animation
    from facemotion.errors import MissingExtra, require
    from facemotion.export import check_format

    with pytest.raises(MissingExtra, match=r"^X needs the optional package facemotion_nope: "
                                           r"pip install 'facemotion\[all\]'$"):
        require("facemotion_nope", "X")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyrender" else real(name, *a))
    anim = Animation.from_blendshapes(np.zeros((2, 52), np.float32), np.zeros((2, 3), np.float32), 25.0)
    check_format(anim, "npz")
    with pytest.raises(MissingExtra, match=r"^mp4 export needs the optional package pyrender: "
                                           r"pip install 'facemotion\[render\]'$"):
        check_format(anim, "mp4")


def test_entry_points_import_without_torch():
    code = ("import sys, facemotion, facemotion.cli; "
            "print(sorted(m for m in ('torch', 'numpy', 'scipy', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
