"""A minimal reader of ICS-23 ``CommitmentProof`` protobufs, to check our tree against cosmos/ics23.

Only what the SMT vectors use: ``ExistenceProof{key=1, value=2, leaf=3, path=4*}``,
``InnerOp{hash=1, prefix=2, suffix=3}``, ``NonExistenceProof{key=1, left=2, right=3}`` and
``CommitmentProof{exist=1 | nonexist=2}``. Existence proofs are converted into our own
:class:`state.smt.Proof` so that *our* verifier is what checks them.
"""

from __future__ import annotations

from dataclasses import dataclass

from state.smt import EMPTY, KEY_BITS, Proof


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(data, i)
            out.append((number, data[i : i + size]))
            i += size
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


@dataclass
class Existence:
    key: bytes
    value: bytes
    steps: list[tuple[bytes, bytes]]  # (prefix, suffix) from the leaf up


def parse_existence(data: bytes) -> Existence:
    key = value = b""
    steps = []
    for number, field in _fields(data):
        if number == 1:
            key = field  # type: ignore[assignment]
        elif number == 2:
            value = field  # type: ignore[assignment]
        elif number == 4:
            op = dict(_fields(field))  # type: ignore[arg-type]
            steps.append((op.get(2, b""), op.get(3, b"")))
    return Existence(key, value, steps)  # type: ignore[arg-type]


def parse_commitment(data: bytes) -> tuple[str, object]:
    ((number, field),) = _fields(data)
    if number == 1:
        return "exist", parse_existence(field)  # type: ignore[arg-type]
    parts = dict(_fields(field))  # type: ignore[arg-type]
    left = parse_existence(parts[2]) if 2 in parts else None  # type: ignore[arg-type]
    right = parse_existence(parts[3]) if 3 in parts else None  # type: ignore[arg-type]
    return "nonexist", (left, right)


def to_native(existence: Existence) -> tuple[Proof, list[int]]:
    """Our proof format, plus each level's direction as ICS-23 states it (1 = child on the right)."""
    depth = len(existence.steps)
    siblings: list[bytes | None] = [None] * depth
    directions = [0] * depth
    for up, (prefix, suffix) in enumerate(existence.steps):
        level = depth - 1 - up
        if len(prefix) == 1 and prefix == b"\x01" and len(suffix) == 32:
            sibling, directions[level] = suffix, 0
        elif len(prefix) == 33 and prefix[0] == 1 and suffix == b"":
            sibling, directions[level] = prefix[1:], 1
        else:
            raise ValueError("not an SmtSpec inner op")
        siblings[level] = None if sibling == EMPTY else sibling
    present = bytearray((depth + 7) // 8)
    for level, sibling in enumerate(siblings):
        if sibling is not None:
            present[level >> 3] |= 0x80 >> (level & 7)
    return Proof(depth, bytes(present), tuple(s for s in siblings if s is not None)), directions


def is_edge(proof: Proof, directions: list[int], start: int, side: int) -> bool:
    """Below level ``start``, whenever the path goes away from ``side``, the sibling on ``side`` is empty.

    ``side`` 1: the leaf is the right-most of its subtree; 0: the left-most.
    """
    for level in range(start, proof.depth):
        present = proof.present[level >> 3] & (0x80 >> (level & 7))
        if directions[level] != side and present:
            return False
    return True


def common_prefix(a: bytes, b: bytes) -> int:
    diff = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return KEY_BITS - diff.bit_length()
