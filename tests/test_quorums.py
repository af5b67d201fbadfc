"""Pulse and checkpoint quorums: the sampler procedure re-implemented from its specification,
the pinned draws, and the quorum rules."""

from __future__ import annotations

from collections.abc import Callable

import blake3
import pytest

from consensus.quorum import (
    CHECKPOINT_QUORUM_SIZE,
    PULSE_VALIDATORS,
    compute_checkpoint_quorum,
    compute_checkpoint_threshold,
    compute_pulse_entropy,
    compute_pulse_quorum,
)
from state.checkpoints import compute_checkpoint_seed
from state.sampler import Sampler
from tests.conftest import load_vectors
from tests.make_quorum_vectors import node_keys

VECTORS = load_vectors("quorums.json")["cases"]


def spec_stream(tag: str, seed: bytes) -> Callable[[int], int]:
    """``uniform`` as state/sampler.py's docstring states it, written independently."""
    key = blake3.blake3(derive_key_context="appchain 2026-11 sampler " + tag).digest()
    stream = blake3.blake3(seed, key=key).digest(length=64 * 1024)
    offset = 0

    def next_u64() -> int:
        nonlocal offset
        value = int.from_bytes(stream[offset : offset + 8], "big")
        offset += 8
        return value

    def uniform(n: int) -> int:
        limit = 2**64 - (2**64 % n)
        while (x := next_u64()) >= limit:
            pass
        return x % n

    return uniform


def spec_sample(tag: str, seed: bytes, items: list[bytes], k: int) -> list[bytes]:
    uniform = spec_stream(tag, seed)
    out = list(items)
    for i in range(min(k, len(out))):
        j = i + uniform(len(out) - i)
        out[i], out[j] = out[j], out[i]
    return out[:k]


@pytest.mark.parametrize("count", [1, 2, 13, 100, 600])
def test_sampler_matches_its_specification(count: int) -> None:
    items = [bytes([i % 256, i // 256]) for i in range(count)]
    for k in (0, 1, 11, 20, count, count + 5):
        drawn = Sampler("test tag", b"some seed").sample(items, k)
        assert drawn == spec_sample("test tag", b"some seed", items, k)
        assert len(drawn) == min(k, count) and len(set(drawn)) == len(drawn)


def test_a_sample_costs_k_draws_not_n() -> None:
    sampler = Sampler("cost", b"seed")
    sampler.sample([bytes([i % 256, i // 256]) for i in range(5000)], 11)
    assert sampler._offset <= 512  # one 512-byte block of the stream: a few dozen u64 draws


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: f"{c['nodes']}n-h{c['height']}-r{c['round']}")
def test_pinned_quorum_draws(case: dict) -> None:
    keys = node_keys(case["nodes"])
    entropy = compute_pulse_entropy([bytes([i]) * 16 for i in range(12)])
    assert entropy.hex() == case["entropy"]
    quorum = compute_pulse_quorum(keys[case["leader_index"]], keys, entropy, case["height"], case["round"])
    assert quorum is not None
    assert quorum.producer.hex() == case["producer"]
    assert [v.hex() for v in quorum.validators] == case["validators"]
    assert [k.hex() for k in compute_checkpoint_quorum(keys, entropy, case["height"])] == case[
        "checkpoint_quorum"
    ]
    # and the draw is the specified one
    leader = keys[case["leader_index"]]
    shuffled = spec_sample(
        "pulse",
        entropy + case["height"].to_bytes(8, "big") + bytes([case["round"]]),
        sorted(k for k in keys if k != leader),
        12,
    )
    seed = compute_checkpoint_seed(entropy, case["height"])
    assert list(compute_checkpoint_quorum(keys, entropy, case["height"])) == spec_sample(
        "checkpoint", seed, sorted(keys), 20
    )
    if case["round"] == 0:
        assert quorum.producer == leader and list(quorum.validators) == shuffled[:11]
    else:
        assert quorum.producer == shuffled[0] and list(quorum.validators) == shuffled[1:12]


def test_pulse_quorum_rules() -> None:
    keys = node_keys(30)
    entropy = bytes(32)
    leader = keys[3]
    quorums = [compute_pulse_quorum(leader, keys, entropy, 10, r) for r in range(4)]
    assert all(q is not None for q in quorums)
    for quorum in quorums:
        assert quorum is not None
        assert len(quorum.validators) == PULSE_VALIDATORS == len(set(quorum.validators))
        assert quorum.producer not in quorum.validators
        assert leader not in quorum.validators
    assert quorums[0].producer == leader  # type: ignore[union-attr]
    assert quorums[1].producer != leader  # type: ignore[union-attr]
    assert len({q.validators for q in quorums if q}) == 4  # every round redraws
    assert compute_pulse_quorum(leader, list(reversed(keys)), entropy, 10, 0) == quorums[0]
    assert compute_pulse_quorum(leader, keys[:11], entropy, 10, 0) is None  # needs 12 active nodes
    assert compute_pulse_quorum(leader, keys[:12], entropy, 10, 0) is not None
    with pytest.raises(ValueError):
        compute_pulse_quorum(leader, keys, entropy, 10, 256)


def test_checkpoint_quorum_rules() -> None:
    assert len(compute_checkpoint_quorum(node_keys(50), bytes(32), 8)) == CHECKPOINT_QUORUM_SIZE
    assert sorted(compute_checkpoint_quorum(node_keys(7), bytes(32), 8)) == sorted(node_keys(7))
    assert compute_checkpoint_threshold(20) == 14
    assert compute_checkpoint_threshold(12) == 8
    assert compute_checkpoint_threshold(13) == 9
    assert compute_checkpoint_threshold(3) == 2
    assert compute_checkpoint_threshold(1) == 1
