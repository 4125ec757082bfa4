"""paw's layers, enforced: every import (module level, in a function or under TYPE_CHECKING) points down or
sideways, never up; packages of one layer never import each other both ways; no module takes part in an import
circle. Run by `make test` and `make lint`.

    cli, api  >  pipeline  >  train, eval, infer, transfer  >  data, models, experiment  >  config  >  utils, errors
"""

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "paw"
LAYERS = [
    {"cli", "api", "__main__"},
    {"pipeline"},
    {"train", "eval", "infer", "transfer", "export"},
    {"data", "models", "experiment"},
    {"config"},
    {"utils", "errors", "__init__"},
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_graph() -> dict[str, set[str]]:
    """paw module -> the paw modules it imports, wherever the import statement is."""
    modules = {_module(path): path for path in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("paw"):
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.startswith("paw")]
            graph[module] |= {name for name in names if name in modules and name != module}
    return graph


def test_every_package_has_a_layer():
    packages = {_package(_module(path)) for path in SRC.rglob("*.py")}
    assert packages <= set(RANK), f"place these in LAYERS: {sorted(packages - set(RANK))}"


def test_no_import_points_up():
    upward = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if RANK[_package(target)] < RANK[_package(module)]
    ]
    assert not upward, "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in list(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_import_circle():
    circles = _cycles(import_graph())
    assert not circles, f"modules importing each other (directly or around a circle): {circles}"


def test_packages_of_one_layer_import_each_other_one_way_only():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        packages[_package(module)] |= {_package(t) for t in targets if _package(t) != _package(module)}
    circles = _cycles(packages)
    assert not circles, f"packages of one layer importing each other both ways: {circles}"


def test_the_checker_sees_circles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not _cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}})
