"""Data flows one way: no stage imports a later one, and no import cycle (docs/architecture.md).

Every ``import trigeo...`` in ``src/`` counts, at module level or inside a function: an
import inside a function is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "trigeo"

#: Neutral modules: any stage may import them; they import only each other.
NEUTRAL = {
    "trigeo", "errors", "sphere", "provenance", "points", "predictions", "calibration",
    "answer", "options", "help_layout",
}  # fmt: skip
#: Stages, upstream to downstream. A package may import its own layer's packages only when
#: the pair is listed in SIDEWAYS; otherwise only layers above it.
LAYERS = [
    {"mesh"},
    {"data"},
    {"models"},
    {"runtime"},
    {"scenes", "train"},
    {"retrieve"},
    {"predict"},
    {"evaluate"},
    {"serve"},
    {"demo"},
    {"cli"},
    {"clidocs"},
]
SIDEWAYS: set[tuple[str, str]] = set()


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "trigeo"


def _imports() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> files that import it."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        source = _unit(module)
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name == "trigeo" or name.startswith("trigeo."):
                    target = _unit(name)
                    if target != source:
                        edges[source][target].add(str(path.relative_to(SRC)))
    return edges


def _layer(unit: str) -> int:
    if unit in NEUTRAL:
        return -1
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise AssertionError(f"trigeo.{unit} is in no layer of tests/test_architecture.py")


def test_every_package_and_module_has_a_place():
    units = {
        _unit(".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"))
        for p in SRC.rglob("*.py")
    }
    assert len(units) > 15
    for unit in units:
        _layer(unit)


def test_no_upward_or_sideways_import():
    upward = []
    for source, targets in _imports().items():
        for target, files in targets.items():
            s, t = _layer(source), _layer(target)
            wrong = (
                (s == -1 and t != -1)
                or (t > s)
                or (t == s and t != -1 and (source, target) not in SIDEWAYS)
            )
            if wrong:
                upward.append(f"{source} -> {target} ({', '.join(sorted(files))})")
    assert not upward, "imports against the flow:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_between_neutral_modules():
    edges = _imports()
    graph = {u: {t for t in edges.get(u, {}) if t in NEUTRAL} for u in NEUTRAL}
    graph = {u: ts - {"trigeo"} for u, ts in graph.items()}  # the package root holds only names

    def visit(unit, path):
        if unit in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(unit) :], unit]))
        for target in graph.get(unit, ()):
            visit(target, [*path, unit])

    for unit in graph:
        visit(unit, [])


def test_the_checker_sees_an_upward_import(tmp_path):
    # The rule itself: a mesh module importing predict is caught, evaluate importing mesh is not.
    assert _layer("predict") > _layer("mesh") and _layer("evaluate") > _layer("mesh")
    assert _layer("points") == -1
