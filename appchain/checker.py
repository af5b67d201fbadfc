"""The checker over a run's histories (:mod:`appchain.journal`): did anything happen that never may?

``appchain check-histories HOME…`` (or :func:`check_histories`) reads every node's
``data/history.jsonl`` and reports:

- **safety violations**: a height at which two nodes (or one node, twice) recorded different final
  blocks;
- **double signs**: a node that signed two different payloads for one slot (height, round, stage);
- **diverging roots**: one final block recorded with two different state roots;
- **the longest stall of finality**: the longest wall-clock gap, over the whole network, between
  one new final height and the next, and the heights on either side of it.

A history line that does not parse is reported too (a history is written by our own nodes, so a
bad line means a torn write or a bug, never to be skipped silently).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

HISTORY = Path("data") / "history.jsonl"


@dataclass
class Report:
    nodes: int = 0
    final_records: int = 0
    signatures: int = 0
    highest_final: int = 0
    safety_violations: list[dict[str, Any]] = field(default_factory=list)
    double_signs: list[dict[str, Any]] = field(default_factory=list)
    diverging_roots: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    longest_stall_seconds: float = 0.0
    longest_stall_between: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return not (self.safety_violations or self.double_signs or self.diverging_roots or self.bad_lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "nodes": self.nodes,
            "final_records": self.final_records,
            "signatures": self.signatures,
            "highest_final": self.highest_final,
            "safety_violations": self.safety_violations,
            "double_signs": self.double_signs,
            "diverging_roots": self.diverging_roots,
            "bad_lines": self.bad_lines,
            "longest_stall_seconds": round(self.longest_stall_seconds, 3),
            "longest_stall_between": self.longest_stall_between,
        }


def history_path(home: Path) -> Path:
    return home / HISTORY


def check_histories(homes: list[Path]) -> Report:
    report = Report(nodes=len(homes))
    finals: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    roots: dict[tuple[int, str], set[str]] = defaultdict(set)
    first_final_at: dict[int, float] = {}
    for home in homes:
        slots: dict[tuple[int, int, int], set[str]] = defaultdict(set)
        path = history_path(home)
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for number, line in enumerate(lines, 1):
            entry = _parse(line)
            if entry is None:
                report.bad_lines.append(f"{path}:{number}")
            elif "final" in entry:
                height, block_hash = entry["final"], entry["hash"]
                report.final_records += 1
                finals[height][block_hash].add(home.name)
                roots[(height, block_hash)].add(entry["root"])
                first_final_at[height] = min(first_final_at.get(height, entry["at"]), entry["at"])
            else:
                report.signatures += 1
                slots[tuple(entry["signed"])].add(entry["digest"])
        for slot, digests in sorted(slots.items()):
            if len(digests) > 1:
                report.double_signs.append(
                    {"node": home.name, "slot": list(slot), "digests": sorted(digests)}
                )
    for height, blocks in sorted(finals.items()):
        if len(blocks) > 1:
            report.safety_violations.append(
                {"height": height, "blocks": {h: sorted(nodes) for h, nodes in sorted(blocks.items())}}
            )
    for (height, block_hash), seen in sorted(roots.items()):
        if len(seen) > 1:
            report.diverging_roots.append({"height": height, "hash": block_hash, "roots": sorted(seen)})
    report.highest_final = max(first_final_at, default=0)
    timeline = sorted(first_final_at.items(), key=lambda item: item[1])
    newest = -1
    progress: list[tuple[int, float]] = []
    for height, at in timeline:  # when the network first reached each new final height
        if height > newest:
            progress.append((height, at))
            newest = height
    for (before, at_before), (after, at_after) in pairwise(progress):
        if at_after - at_before > report.longest_stall_seconds:
            report.longest_stall_seconds = at_after - at_before
            report.longest_stall_between = (before, after)
    return report


def _parse(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("at"), int | float):
        return None
    if "final" in entry:
        ok = isinstance(entry["final"], int) and all(isinstance(entry.get(k), str) for k in ("hash", "root"))
    else:
        slot = entry.get("signed")
        ok = (
            isinstance(slot, list)
            and len(slot) == 3
            and all(isinstance(x, int) for x in slot)
            and isinstance(entry.get("digest"), str)
        )
    return entry if ok else None
