"""The package's import graph, read from the source with ``ast`` (function-level imports included):
no cycle, each stage imports only what lies below it, and training stays off the WebUI's path."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = "lib_humanrefine"

# Bottom to top: a node imports only nodes of lower layers. A node is a top-level module or
# subpackage of lib_humanrefine ("lib_humanrefine" is the package's own __init__); the learned check's
# runtime, diagnose/learned/, is a node of its own below the rest of diagnose. The image flows
# plan -> conditions -> host, but plan calls conditions to render each step's control images and the
# host-neutral records (hosts.base's request and controls, hosts.families' native sizes) are read by
# conditions and plan: so conditions lie below plan, and hosts below both (hosts/webui.py, the WebUI
# adapter, imports nothing of the pipeline).
LAYERS = [
    {"errors", "deps"},
    {"lib_humanrefine", "atomic", "images", "options", "infotext"},
    {"models", "metrics", "prompt_tags", "client"},
    {"detect", "hosts"},
    {"diagnose.learned"},
    {"diagnose"},
    {"conditions"},
    {"plan"},
    {"verify", "planout", "teach", "folder"},
    {"engine", "training", "scale"},
    {"service", "judge_bench", "bench"},
    {"webui", "cli"},
    {"__main__"},
]
TRAINING_USERS = {"cli", "bench"}  # training (scikit-learn, data sets) is for the command line only


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__) for every module under ``root/lib_humanrefine``."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def imported(path: Path, package: str | None, known: dict) -> set[str]:
    """Every module ``path`` imports anywhere in its body: a known module where the import names one
    (``from . import models``), else the package or external module it names."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = (package or "").split(".")
                base = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return out


def module_graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {
        name: imported(path, name if is_package else name.rpartition(".")[0], known)
        for name, (path, is_package) in known.items()
    }


def node_of(module: str) -> str | None:
    """The graph node of a lib_humanrefine module; None for any other module."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return PACKAGE
    return "diagnose.learned" if parts[1:3] == ["diagnose", "learned"] else parts[1]


def node_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    nodes: dict[str, set[str]] = {}
    for module, targets in graph.items():
        here = node_of(module)
        edges = nodes.setdefault(here, set())
        edges.update(t for t in map(node_of, targets) if t and t != here)
    return nodes


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as its path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_walk_sees_function_level_imports():
    graph = module_graph(REPO)
    # imported inside diagnose_image, not at the top of the module
    assert "lib_humanrefine.diagnose.learned" in graph["lib_humanrefine.diagnose"]
    assert "lib_humanrefine.models" in graph["lib_humanrefine.teach"]
    assert "diagnose.learned" in node_graph(graph)["diagnose"]


def test_find_cycle_reports_the_path(tmp_path):
    package = tmp_path / PACKAGE
    (package / "plan").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "detect.py").write_text("def f():\n    from .plan import steps\n")
    (package / "plan" / "__init__.py").write_text("from ..diagnose import x\n")
    (package / "diagnose.py").write_text("import lib_humanrefine.detect\n")
    nodes = node_graph(module_graph(tmp_path))
    assert find_cycle(nodes) == ["detect", "plan", "diagnose", "detect"]
    del nodes["diagnose"]
    assert find_cycle(nodes) is None


def test_no_import_cycle():
    cycle = find_cycle(node_graph(module_graph(REPO)))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_node_imports_only_lower_layers():
    layer = {node: n for n, members in enumerate(LAYERS) for node in members}
    assert sum(map(len, LAYERS)) == len(layer), "a node is in two layers"
    nodes = node_graph(module_graph(REPO))
    unplaced = sorted(set(nodes) - set(layer))
    assert not unplaced, f"place these in LAYERS: {unplaced}"
    wrong = sorted(
        f"{node} (layer {layer[node]}) imports {target} (layer {layer[target]})"
        for node, targets in nodes.items()
        for target in targets
        if layer[target] >= layer[node]
    )
    assert not wrong, "imports that do not go down:\n" + "\n".join(wrong)


def test_only_the_command_line_imports_training():
    nodes = node_graph(module_graph(REPO))
    users = sorted(node for node, targets in nodes.items() if "training" in targets)
    assert users and set(users) <= TRAINING_USERS, f"training is imported by {users}"


def test_the_webui_path_reaches_neither_training_nor_scikit_learn():
    """From the Script, install.py, preload.py and every webui module, transitively."""
    graph = module_graph(REPO)
    entry = {}
    for path in [*sorted((REPO / "scripts").glob("*.py")), REPO / "install.py", REPO / "preload.py"]:
        entry[str(path.relative_to(REPO))] = imported(path, None, graph)
    todo = [m for m in graph if m.split(".")[:2] == [PACKAGE, "webui"]]
    todo += [m for targets in entry.values() for m in targets if m in graph]
    reached = {}
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        reached[module] = graph[module]
        todo += [t for t in graph[module] if t in graph]
    assert "lib_humanrefine.service" in reached and "lib_humanrefine.diagnose.learned" in reached
    bad = sorted(m for m in reached if node_of(m) == "training")
    bad += sorted(f"{m} imports {t}" for m, ts in {**reached, **entry}.items() for t in ts if t.startswith("sklearn"))
    assert not bad, "the WebUI's path: " + "; ".join(bad)
