"""The package layering of DESIGN.md, enforced on the import statements themselves: the
packages, the floors of appchain's rooms, and no import cycle between any two files."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("state", "genesis", "consensus", "p2p", "appchain")
ALLOWED: dict[str, set[str]] = {
    "state": set(),
    "genesis": {"state"},
    "consensus": {"state"},
    "p2p": {"state"},
    "appchain": {"state", "genesis", "consensus", "p2p"},
}
# p2p may use only these parts of state: bytes and envelopes, never chain rules.
P2P_STATE_MODULES = {"state.encoding", "state.hashing", "state.types", "state.crypto"}
# state is pure computation: no I/O frameworks, no storage.
STATE_FORBIDDEN = {"trio", "plyvel", "socket", "asyncio", "time", "random", "os", "pathlib"}
FLOORS = {"cli": 6, "lab": 5, "node": 4, "rpc": 3, "client": 3, "messaging": 2, "home": 1}
"""appchain's rooms by floor, from the top: cli, lab, node, then rpc and client (one floor, neither
imports the other), messaging, home. A room imports only rooms on lower floors."""


def imports_of(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_packages_import_only_what_the_design_allows() -> None:
    problems = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in imports_of(path):
                top = name.split(".")[0]
                if top in PACKAGES and top != package and top not in ALLOWED[package]:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
                if (
                    package == "p2p"
                    and top == "state"
                    and not any(
                        name == allowed or name.startswith(allowed + ".") for allowed in P2P_STATE_MODULES
                    )
                ):
                    problems.append(
                        f"{path.relative_to(ROOT)} imports {name} (p2p may use encoding/crypto only)"
                    )
                if package == "state" and top in STATE_FORBIDDEN:
                    problems.append(f"{path.relative_to(ROOT)} imports {name} (state must stay pure)")
    assert problems == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from appchain.home.store import BlockStore\nimport genesis.document\n")
    assert imports_of(bad) == ["appchain.home.store", "genesis.document"]


def test_the_light_client_needs_no_node_no_database_no_event_loop() -> None:
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, appchain.client.lightclient, appchain.client.wallet; print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    for heavy in ("'plyvel'", "'trio'", "'appchain.home.store'", "'appchain.node'", "'h11'"):
        assert heavy not in loaded


# -- between files: appchain's floors, and no import cycle anywhere --------------------------------


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project's packages, by dotted name (a package by its ``__init__``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def module_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports, wherever the import stands: at module level, in a
    function or under ``TYPE_CHECKING``; ``from package import module`` names that module, and a
    relative import is resolved against ``name``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [node.module])])
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for candidate in candidates:
            parts = candidate.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                found.add(".".join(parts))
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def room_of(module: str) -> str | None:
    """The room of an appchain module (``appchain.rpc.server`` → ``rpc``); None outside appchain
    and for ``appchain`` itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == "appchain" and len(parts) > 1 else None


def floor_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imported in sorted(graph.items()):
        room = room_of(module)
        if module.startswith("appchain.") and room not in FLOORS:
            problems.append(f"{module} is in no room of appchain (rooms: {', '.join(FLOORS)})")
            continue
        for target in sorted(imported):
            other = room_of(target)
            if room is None or other is None or other == room or other not in FLOORS:
                continue
            if FLOORS[other] >= FLOORS[room]:
                problems.append(
                    f"{module} imports {target}: {room} (floor {FLOORS[room]}) may import only "
                    f"rooms below it, and {other} is on floor {FLOORS[other]}"
                )
    return problems


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, …, a]``) for each group of modules that import each other, found as the
    strongly connected components of the graph (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = {stack.pop()}
            while module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                cycles.append(_cycle_through(module, group, graph))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def _cycle_through(start: str, group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest way from ``start`` back to itself inside ``group`` (breadth first)."""
    paths = {target: [start, target] for target in sorted(graph[start] & group)}
    queue = list(paths)
    while start not in paths:
        module = queue.pop(0)
        for target in sorted(graph[module] & group):
            if target not in paths:
                paths[target] = [*paths[module], target]
                queue.append(target)
    return paths[start]


def test_appchain_rooms_import_only_the_floors_below() -> None:
    """DESIGN.md's floors of appchain: cli, lab, node, rpc and client, messaging, home. The servers
    (public port, JSON-RPC methods, admin, metrics) are handed the node that starts them, so not
    even a ``TYPE_CHECKING`` import of the node is allowed below it."""
    assert floor_violations(import_graph()) == []


def test_no_import_cycle_between_files() -> None:
    """Over state, genesis, consensus, p2p and appchain: module-level, function-level and
    ``TYPE_CHECKING`` imports all count."""
    assert [" -> ".join(cycle) for cycle in import_cycles(import_graph())] == []


def test_the_floor_and_cycle_checks_see_violations(tmp_path: Path) -> None:
    files = {
        "appchain/__init__.py": "",
        "appchain/home/__init__.py": "",
        "appchain/home/store.py": "def late():\n    from appchain.home import chain\n",
        "appchain/home/chain.py": "from appchain.home.store import late\n",
        "appchain/rpc/__init__.py": "",
        "appchain/rpc/server.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..node.node import Node\n",
        "appchain/node/__init__.py": "",
        "appchain/node/node.py": "import appchain.rpc.server\n",
        "appchain/tool.py": "",
    }  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
    graph = import_graph(tmp_path)
    assert graph["appchain.rpc.server"] == {"appchain.node.node"}
    assert floor_violations(graph) == [
        "appchain.rpc.server imports appchain.node.node: rpc (floor 3) may import only rooms below it,"
        " and node is on floor 4",
        "appchain.tool is in no room of appchain (rooms: cli, lab, node, rpc, client, messaging, home)",
    ]
    assert import_cycles(graph) == [
        ["appchain.home.chain", "appchain.home.store", "appchain.home.chain"],
        ["appchain.node.node", "appchain.rpc.server", "appchain.node.node"],
    ]
