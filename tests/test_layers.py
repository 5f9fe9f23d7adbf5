"""The package's folders are its architecture, and dependencies point one way (issue 15):

    cli ─▶ app ─▶ stream ─▶ upstream ─▶ route ─▶ classify ─▶ core (triage._config, _exceptions, _json, ...)
            └──▶ learn ────────────────────────────▲
    demo, sim ─▶ core only (they run beside the gateway, not inside it)

Every import counts, including those inside functions and under `if TYPE_CHECKING:`: a lazy import is still a
dependency. Read from the source with `ast`, so a module never has to be imported to be checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import triage

ROOT = Path(triage.__file__).parent

# What each part may import besides itself. A part missing here is a new folder: say where it belongs.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "classify": {"core"},
    "route": {"core", "classify"},
    "upstream": {"core", "classify", "route"},
    "stream": {"core", "route", "upstream"},
    "learn": {"core", "classify"},
    "app": {"core", "classify", "route", "upstream", "stream", "learn"},
    "sim": {"core"},
    "demo": {"core"},
    "cli": {"core", "classify", "route", "upstream", "stream", "learn", "app", "sim", "demo"},
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """The triage modules `name` imports (a `from package import name` of a submodule names the submodule)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import; the package imports absolutely"
            base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("triage") and target != name:
                yield target


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and not parts[1].startswith("_") else "core"


GRAPH = {name: set(_imports(name, path)) for name, path in MODULES.items()}
FACADE = {"triage", "triage.__main__"}  # the curated top-level API and `python -m triage` sit above everything


def test_every_folder_has_a_layer() -> None:
    assert {_part(m) for m in MODULES if m not in FACADE} == set(ALLOWED)


def test_dependencies_point_one_way() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module not in FACADE
        for target in targets
        if _part(target) != _part(module) and _part(target) not in ALLOWED[_part(module)]
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    """Tarjan's strongly connected components over every module: each must be a module alone."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # the graph is a few hundred edges: recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert not cycles, cycles


def test_modules_stay_small() -> None:
    """STYLE.md 12: split a module before it reaches about 400 lines."""
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 420}
    assert not long, long
