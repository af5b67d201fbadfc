"""Writes tests/vectors/quorums.json: the pinned quorum draws (run once; the tests read it).

Usage: python -m tests.make_quorum_vectors. Changing the output is a consensus change.
"""

from __future__ import annotations

import json
from pathlib import Path

import blake3

from consensus.quorum import compute_checkpoint_quorum, compute_pulse_entropy, compute_pulse_quorum
from state.types import NodeKey


def node_keys(count: int) -> list[NodeKey]:
    return [NodeKey(blake3.blake3(b"node %d" % i).digest()) for i in range(count)]


def main() -> None:
    cases = []
    for count, height, round_ in (
        (12, 100, 0),
        (12, 100, 1),
        (30, 7, 0),
        (30, 7, 3),
        (50, 123456, 0),
        (50, 123456, 255),
        (50, 123456, 256),
        (50, 123456, 65535),
        (4, 9, 0),
        (4, 9, 2),
        (7, 9, 1),
        (11, 9, 5),
    ):
        keys = node_keys(count)
        entropy = compute_pulse_entropy([bytes([i]) * 16 for i in range(12)])
        leader = keys[count // 2]
        quorum = compute_pulse_quorum(leader, keys, entropy, height, round_, min_nodes=4)
        assert quorum is not None
        cases.append(
            {
                "nodes": count,
                "node_key_rule": "blake3(b'node %d' % i) for i in range(nodes)",
                "leader_index": count // 2,
                "entropy_rule": "compute_pulse_entropy([bytes([i]) * 16 for i in range(12)])",
                "entropy": entropy.hex(),
                "height": height,
                "round": round_,
                "producer": quorum.producer.hex(),
                "validators": [v.hex() for v in quorum.validators],
                "checkpoint_quorum": [k.hex() for k in compute_checkpoint_quorum(keys, entropy, height)],
            }
        )
    path = Path(__file__).parent / "vectors" / "quorums.json"
    path.write_text(json.dumps({"description": __doc__, "cases": cases}, indent=2) + "\n")


if __name__ == "__main__":
    main()
