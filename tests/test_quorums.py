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
    compute_pulse_threshold,
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
    leader = keys[case["leader_index"]]
    quorum = compute_pulse_quorum(leader, keys, entropy, case["height"], case["round"], min_nodes=4)
    assert quorum is not None
    assert quorum.producer.hex() == case["producer"]
    assert [v.hex() for v in quorum.validators] == case["validators"]
    assert [k.hex() for k in compute_checkpoint_quorum(keys, entropy, case["height"])] == case[
        "checkpoint_quorum"
    ]
    # and the draw is the specified one: the round one byte below 256, two from 256 on
    round_ = case["round"]
    round_bytes = bytes([round_]) if round_ < 256 else round_.to_bytes(2, "big")
    shuffled = spec_sample(
        "pulse",
        entropy + case["height"].to_bytes(8, "big") + round_bytes,
        sorted(k for k in keys if k != leader),
        12,
    )
    seed = compute_checkpoint_seed(entropy, case["height"])
    assert list(compute_checkpoint_quorum(keys, entropy, case["height"])) == spec_sample(
        "checkpoint", seed, sorted(keys), 20
    )
    if round_ == 0:
        assert quorum.producer == leader and list(quorum.validators) == shuffled[:11]
    elif case["nodes"] >= 12:
        assert quorum.producer == shuffled[0] and list(quorum.validators) == shuffled[1:12]
    else:  # a small set (PROTOCOL.md §4a): the leader validates the backup rounds
        assert quorum.producer == shuffled[0] and list(quorum.validators) == [*shuffled[1:], leader]
    assert len(quorum.validators) == min(11, case["nodes"] - 1) or (case["nodes"] == 12 and round_ > 0)


def test_pulse_quorum_rules() -> None:
    keys = node_keys(30)
    entropy = bytes(32)
    leader = keys[3]
    quorums = [compute_pulse_quorum(leader, keys, entropy, 10, r, min_nodes=4) for r in range(4)]
    assert all(q is not None for q in quorums)
    for quorum in quorums:
        assert quorum is not None
        assert len(quorum.validators) == PULSE_VALIDATORS == len(set(quorum.validators))
        assert quorum.producer not in quorum.validators
        assert leader not in quorum.validators
    assert quorums[0].producer == leader  # type: ignore[union-attr]
    assert quorums[1].producer != leader  # type: ignore[union-attr]
    assert len({q.validators for q in quorums if q}) == 4  # every round redraws
    assert compute_pulse_quorum(leader, list(reversed(keys)), entropy, 10, 0, min_nodes=4) == quorums[0]
    # rounds are 16 bits: 256 and 65,535 draw quorums, 65,536 is no round
    assert compute_pulse_quorum(leader, keys, entropy, 10, 256, min_nodes=4) not in quorums
    assert compute_pulse_quorum(leader, keys, entropy, 10, 65_535, min_nodes=4) is not None
    with pytest.raises(ValueError):
        compute_pulse_quorum(leader, keys, entropy, 10, 65_536, min_nodes=4)


@pytest.mark.parametrize("nodes", [2, 3, 4, 5, 7, 10, 11, 12, 13])
def test_small_active_sets_have_a_quorum_of_every_other_node(nodes: int) -> None:
    """PROTOCOL.md §4a: V = min(11, N - 1) validators, T = ⌈7V/11⌉ signatures, down to the floor."""
    keys = node_keys(nodes)
    leader = keys[0]
    for round_ in range(3):
        quorum = compute_pulse_quorum(leader, keys, bytes(32), 10, round_, min_nodes=4)
        if nodes < 4:
            assert quorum is None  # below pulse_min_nodes: no Pulse
            continue
        assert quorum is not None
        members = [quorum.producer, *quorum.validators]
        assert len(set(members)) == len(members)
        full_backup = nodes == 12 and round_ > 0  # mainnet's rule: the leader sits backup rounds out
        assert len(quorum.validators) == (10 if full_backup else min(11, nodes - 1))
        assert quorum.threshold * 2 > len(quorum.validators)
        if nodes < 12:
            assert set(members) == set(keys)  # every node takes part
    assert compute_pulse_quorum(leader, keys, bytes(32), 10, 0, min_nodes=nodes + 1) is None


def test_the_pulse_threshold_is_seven_elevenths_rounded_up() -> None:
    assert [compute_pulse_threshold(v) for v in range(1, 12)] == [1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 7]
    # 7 of 11, 7 of 10, 6 of 9, 5 of 7, 3 of 4, 2 of 3 (PROTOCOL.md §4a)
    assert [compute_pulse_threshold(v) for v in (11, 10, 9, 7, 4, 3)] == [7, 7, 6, 5, 3, 2]


def test_checkpoint_quorum_rules() -> None:
    assert len(compute_checkpoint_quorum(node_keys(50), bytes(32), 8)) == CHECKPOINT_QUORUM_SIZE
    assert sorted(compute_checkpoint_quorum(node_keys(7), bytes(32), 8)) == sorted(node_keys(7))
    assert compute_checkpoint_threshold(20) == 14
    assert compute_checkpoint_threshold(12) == 8
    assert compute_checkpoint_threshold(13) == 9
    assert compute_checkpoint_threshold(3) == 2
    assert compute_checkpoint_threshold(1) == 1
