"""Swarm placement: the storage server and oxen-core vectors, and the assignment invariants."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.sampler import Sampler
from state.swarms import (
    MAX_SWARM_ID,
    SwarmRules,
    compute_new_swarm_id,
    compute_swarm_changes,
    compute_swarm_space,
    find_swarm,
)
from tests.conftest import load_vectors

VECTORS = load_vectors("swarm.json")
RULES = SwarmRules(min_size=5, new_size=7, margin=2, fill_percentile=25, steal_percentile=75)


@pytest.mark.parametrize("case", VECTORS["swarm_space_cases"], ids=lambda c: c["pubkey_hex"][:10])
def test_swarm_space(case: dict) -> None:
    assert compute_swarm_space(bytes.fromhex(case["pubkey_hex"])) == int(case["expected_swarm_space"])


NEAREST = [(group["swarm_ids"], case) for group in VECTORS["nearest_swarm_groups"] for case in group["cases"]]


@pytest.mark.parametrize(
    ("ids", "case"), NEAREST, ids=lambda x: x.get("swarm_space", "") if isinstance(x, dict) else ""
)
def test_nearest_swarm(ids: list[str], case: dict) -> None:
    swarm_ids = sorted(int(i) for i in ids)
    space = compute_swarm_space(bytes.fromhex(case["pubkey_hex"]))
    assert space == int(case["swarm_space"])
    assert find_swarm(swarm_ids, space) == int(case["expected_swarm_id"])


@pytest.mark.parametrize("case", VECTORS["new_swarm_id_cases"], ids=lambda c: c["expected_new_swarm_id"])
def test_new_swarm_id(case: dict) -> None:
    assert compute_new_swarm_id([int(i) for i in case["existing_swarm_ids"]]) == int(
        case["expected_new_swarm_id"]
    )


class MersenneTwister64:
    """The 64-bit Mersenne Twister (std::mt19937_64), for oxen-core's id simulation vector."""

    def __init__(self, seed: int) -> None:
        self.mt = [0] * 312
        self.index = 312
        self.mt[0] = seed
        for i in range(1, 312):
            self.mt[i] = (6364136223846793005 * (self.mt[i - 1] ^ (self.mt[i - 1] >> 62)) + i) & (2**64 - 1)

    def __call__(self) -> int:
        if self.index >= 312:
            for i in range(312):
                x = (self.mt[i] & 0xFFFFFFFF80000000) | (self.mt[(i + 1) % 312] & 0x7FFFFFFF)
                xa = x >> 1
                if x & 1:
                    xa ^= 0xB5026F5AA96619E9
                self.mt[i] = self.mt[(i + 156) % 312] ^ xa
            self.index = 0
        y = self.mt[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & (2**64 - 1)


def test_deterministic_swarm_id_simulation() -> None:
    sim = VECTORS["new_swarm_id_deterministic_simulation"]
    rng = MersenneTwister64(12345)
    ids: list[int] = []
    for _ in range(sim["iterations"]):
        n = rng()
        if n < 2**62 and ids:
            ids.pop(n % len(ids))
        elif n >= 2**62:
            new = compute_new_swarm_id(ids)
            assert new not in ids and new <= MAX_SWARM_ID
            ids.append(new)
            ids.sort()
    assert len(ids) == sim["expected_final_count"]
    for index, value in sim["expected_ids_at_sorted_index"].items():
        assert ids[int(index)] == int(value)


def test_bad_account_length() -> None:
    with pytest.raises(ValueError):
        compute_swarm_space(b"\x05" * 20)
    with pytest.raises(ValueError):
        find_swarm([], 1)


def _nodes(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return sorted(rng.randbytes(32) for _ in range(count))


def _check(swarms: dict[int, list[bytes]], nodes: list[bytes]) -> None:
    members = [node for group in swarms.values() for node in group]
    assert sorted(members) == sorted(nodes), "every active node is in exactly one swarm"
    if len(swarms) > 1:
        assert all(len(group) >= RULES.min_size for group in swarms.values())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 120), st.integers(0, 60), st.integers(0, 2**32), st.binary(min_size=1, max_size=8))
def test_assignment_invariants_through_churn(start: int, churn: int, seed: int, entropy: bytes) -> None:
    nodes = _nodes(start, seed)
    swarms = compute_swarm_changes({}, nodes, RULES, Sampler("swarm", entropy))
    _check(swarms, nodes)
    rng = random.Random(seed)
    for step in range(churn // 10 + 1):
        leaving = set(rng.sample(nodes, min(len(nodes) - 1, rng.randint(0, 5)))) if len(nodes) > 1 else set()
        joining = _nodes(rng.randint(0, 8), seed + step + 1)
        current = {sid: [n for n in group if n not in leaving] for sid, group in swarms.items()}
        nodes = [n for n in nodes if n not in leaving] + joining
        swarms = compute_swarm_changes(current, joining, RULES, Sampler("swarm", entropy + bytes([step])))
        _check(swarms, nodes)


def test_same_seed_same_swarms_and_sizes_grow_swarm_count() -> None:
    nodes = _nodes(100, 7)
    a = compute_swarm_changes({}, nodes, RULES, Sampler("swarm", b"x"))
    b = compute_swarm_changes({}, list(reversed(nodes)), RULES, Sampler("swarm", b"x"))
    assert a == b
    assert 100 // 10 <= len(a) <= 100 // 5
    assert compute_swarm_changes({}, nodes, RULES, Sampler("swarm", b"y")) != a


def test_sampler_is_uniform_enough_and_pinned() -> None:
    sampler = Sampler("test", b"seed")
    first = [sampler.next_u64() for _ in range(3)]
    again = Sampler("test", b"seed")
    assert [again.next_u64() for _ in range(3)] == first
    assert Sampler("other", b"seed").next_u64() != first[0]
    counts = [0] * 6
    for _ in range(6000):
        counts[sampler.uniform(6)] += 1
    assert all(800 < c < 1200 for c in counts)
    with pytest.raises(ValueError):
        sampler.uniform(0)
