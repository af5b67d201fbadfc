"""The package layering of DESIGN.md, enforced on the import statements themselves."""

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
    for heavy in ("'plyvel'", "'trio'", "'appchain.home.store'", "'appchain.node.node'", "'h11'"):
        assert heavy not in loaded
