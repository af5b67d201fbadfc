"""The checker over a run's histories (:mod:`appchain.node.journal`): did anything happen that never may?

``appchain check-histories HOME…`` (or :func:`check_histories`) reads every node's
``data/history.jsonl`` and reports:

- **safety violations**: a height at which two nodes (or one node, twice) recorded different final
  blocks;
- **double signs**: a node that signed two different payloads for one slot (height, round, stage);
- **diverging roots**: one final block recorded with two different state roots;
- **the longest stall of finality**: the longest wall-clock gap, over the whole network, between
  one new final height and the next, and the heights on either side of it; with the faults of a
  run (:class:`FaultWindow`, from the record :mod:`appchain.lab.nemesis` writes), its cause: the
  faults active during it, or none;
- **resumes**: given the times faults were healed, the time from each heal to the next final
  block (the first height final anywhere that is above every height final before the heal).
  Each must come within ``resume_within`` seconds (``check-histories`` takes 3 Pulse round
  timeouts of the first home's config); a later one, or none at all, fails the check.

A history line that does not parse is reported too (a history is written by our own nodes, so a
bad line means a torn write or a bug, never to be skipped silently), with why: not UTF-8, not
JSON, nested too deeply, or not a history record. Every line is parsed by the depth-limited
decoder (:func:`state.encoding.decode_json`): a history is a file, and a file can hold anything,
such as 300,000 ``[`` that would overflow a recursive parser's C stack (``py_ecc`` raises the
recursion limit, so the interpreter would die of it instead of raising).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from appchain.node.journal import history_path
from state.encoding import DecodeError, decode_json

RESUME_ROUNDS = 3
"""Finality must resume within this many Pulse round timeouts of a heal (``check-histories``)."""


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
    """``file:line`` of every line that does not parse."""
    bad_line_reasons: list[str] = field(default_factory=list)
    """Why each of :attr:`bad_lines` does not parse, in the same order."""
    longest_stall_seconds: float = 0.0
    longest_stall_between: tuple[int, int] | None = None
    longest_stall_cause: list[str] = field(default_factory=list)
    resume_within: float | None = None
    resumes: list[dict[str, Any]] = field(default_factory=list)
    """One per heal: ``healed_at``, ``seconds`` to the next final block (None: never) and ``height``."""

    @property
    def late_resumes(self) -> list[dict[str, Any]]:
        """The heals after which finality did not resume in time (or at all)."""
        limit = self.resume_within
        return [
            r for r in self.resumes if r["seconds"] is None or (limit is not None and r["seconds"] > limit)
        ]

    @property
    def worst_resume(self) -> float | None:
        times = [r["seconds"] for r in self.resumes if r["seconds"] is not None]
        return max(times, default=None)

    @property
    def ok(self) -> bool:
        return not (
            self.safety_violations
            or self.double_signs
            or self.diverging_roots
            or self.bad_lines
            or self.late_resumes
        )

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
            "bad_line_reasons": self.bad_line_reasons,
            "longest_stall_seconds": round(self.longest_stall_seconds, 3),
            "longest_stall_between": self.longest_stall_between,
            "longest_stall_cause": self.longest_stall_cause,
            "resume_within": self.resume_within,
            "heals": len(self.resumes),
            "worst_resume_seconds": self.worst_resume,
            "late_resumes": self.late_resumes,
        }


@dataclass(frozen=True)
class FaultWindow:
    """A fault of a run: what it was, and when it started and was healed (wall clock)."""

    label: str
    applied_at: float
    healed_at: float


def read_schedules(path: Path) -> tuple[list[float], list[FaultWindow]]:
    """The heal times (one per schedule: its last heal) and fault windows of a record written by
    :func:`appchain.lab.nemesis.run_schedule`; ValueError naming the line that does not parse."""
    heals, windows = [], []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            entry = decode_json(line)
            heals.append(float(entry["healed_at"]))
            for fault in entry["faults"]:
                label = f"schedule {entry['seed']}: {fault['label']}"
                windows.append(FaultWindow(label, float(fault["applied_at"]), float(fault["healed_at"])))
        except (DecodeError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a schedule record ({exc})") from None
    return heals, windows


def check_histories(
    homes: list[Path],
    *,
    healed_at: Sequence[float] = (),
    resume_within: float | None = None,
    faults: Sequence[FaultWindow] = (),
) -> Report:
    report = Report(nodes=len(homes), resume_within=resume_within)
    finals: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    roots: dict[tuple[int, str], set[str]] = defaultdict(set)
    first_final_at: dict[int, float] = {}
    for home in homes:
        slots: dict[tuple[int, int, int], set[str]] = defaultdict(set)
        path = history_path(home)
        lines = path.read_bytes().splitlines() if path.exists() else []
        for number, line in enumerate(lines, 1):
            entry = _parse(line)
            if isinstance(entry, str):
                report.bad_lines.append(f"{path}:{number}")
                report.bad_line_reasons.append(entry)
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
    stall_window = (0.0, 0.0)
    for (before, at_before), (after, at_after) in pairwise(progress):
        if at_after - at_before > report.longest_stall_seconds:
            report.longest_stall_seconds = at_after - at_before
            report.longest_stall_between = (before, after)
            stall_window = (at_before, at_after)
    if report.longest_stall_between is not None:
        report.longest_stall_cause = [
            f.label for f in faults if f.applied_at < stall_window[1] and f.healed_at > stall_window[0]
        ]
    report.resumes = [_resume(progress, at) for at in sorted(healed_at)]
    return report


def _resume(progress: list[tuple[int, float]], healed_at: float) -> dict[str, Any]:
    """The first new final height after ``healed_at`` and how long after it came."""
    final_before = max((h for h, at in progress if at <= healed_at), default=0)
    for height, at in progress:
        if at > healed_at and height > final_before:
            return {"healed_at": healed_at, "seconds": round(at - healed_at, 3), "height": height}
    return {"healed_at": healed_at, "seconds": None, "height": None}


def _parse(line: bytes) -> dict[str, Any] | str:
    """A history record, or why the line is not one."""
    try:
        entry = decode_json(line)
    except DecodeError as exc:
        return str(exc)
    if not isinstance(entry, dict) or not isinstance(entry.get("at"), int | float):
        return "not a history record"
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
    return entry if ok else "not a history record"
