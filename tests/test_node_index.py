"""The derived node index and the draws that read it: against a full scan and against copies.

- after every block of a random chain (every event kind: registrations, contributions, unlocks,
  decommissions, recommissions, deregistrations, exits), the index :meth:`State.install` moved
  along equals the one a scan of the records builds, and so do the index and the lists a
  block's view sees once its producer moved (:func:`state.nodeindex.view_index`, ``view_lists``);
- a state's copy shares the index until one of them commits a block, and neither then sees the
  other's blocks;
- ``Sampler.sample`` swaps virtually, and draws what Fisher–Yates on a copy draws;
- a sample ``excluding`` positions is the sample of the filtered copy;
- the draws from the index's sorted lists (``draw_*``) are the draws of any-order inputs
  (``compute_*``/``select_*``).
"""

from __future__ import annotations

import random

import pytest

from appchain.cli.devchain import DevChainGenerator
from consensus.local import sign_round_locally
from consensus.quorum import compute_pulse_quorum, draw_pulse_quorum
from consensus.validation import compute_block_entropy, compute_block_quorum
from genesis.build import create_genesis_state
from genesis.devnet import create_devnet_genesis
from state.checkpoints import draw_checkpoint_members, select_checkpoint_members
from state.context import BlockContext
from state.nodeindex import build_index, view_index, view_lists
from state.nodes import move_producer_to_back
from state.obligations import compute_obligations_quorum, draw_obligations_quorum
from state.params import ChainParams
from state.sampler import Sampler
from state.state import State, state_index
from state.transition import apply_block, commit_block, propose_block, with_final_block
from state.types import NodeKey
from state.view import Overlay


class _Chain:
    """What :class:`DevChainGenerator` needs of a chain, in memory."""

    def __init__(self, nodes: int, name: str) -> None:
        self.genesis, self.nodes, self.users = create_devnet_genesis(nodes, name, users=8)
        self.state = create_genesis_state(self.genesis)[0]
        self.random_values = [bytes(16)]

    @property
    def height(self) -> int:
        return self.state.height

    def random_value_at(self, height: int) -> bytes:
        return self.random_values[height]


@pytest.mark.parametrize(("nodes", "seed"), [(14, "a"), (40, "b")])
def test_the_index_follows_the_records_block_after_block(nodes: int, seed: str) -> None:
    chain = _Chain(nodes, f"index {seed}")
    generator = DevChainGenerator(
        chain,  # type: ignore[arg-type]
        [n.operator for n in chain.nodes] + chain.users,
        seed,
        events_per_block=25,
        nodes=[(n.node, n.bls_secret) for n in chain.nodes],
    )
    statuses_seen = set()
    for _ in range(120):
        state = chain.state
        round_, quorum = generator.choose_round()
        # what a block's rules see after its producer went to the back of the queue
        ctx = BlockContext(
            state.height + 1, state.timestamp, state.block_hash, state.chain_id, state.params, False,
            quorum.producer,
        )  # fmt: skip
        view = Overlay(state.get, index=state_index(state))
        move_producer_to_back(view, ctx)
        scanned = build_index(view.get)
        assert view_index(view) == scanned
        assert view_lists(view) == (scanned.active, scanned.decommissioned, scanned.listed)
        events = generator.make_events(quorum.producer)
        template = propose_block(
            state, events, state.timestamp + state.params.block_time, producer=quorum.producer, round_=round_
        )
        block = sign_round_locally(template.block, quorum, generator.node_keys, generator.rng.randbytes)
        apply_block(state, with_final_block(template, block).block)
        chain.random_values.append(block.header.random_value)
        index = state_index(state)
        assert index == build_index(state.get), state.height
        assert index.listed == sorted(index.active + index.decommissioned)
        statuses_seen.add((len(index.decommissioned) > 0, len(index.active)))
    assert any(decommissioned for decommissioned, _ in statuses_seen)  # the chain exercised it


def _empty_block(state: State) -> None:
    height = state.height + 1
    quorum = compute_block_quorum(state, compute_block_entropy(lambda h: bytes(16), height), height, 0)
    assert quorum is not None
    timestamp = state.timestamp + state.params.block_time
    commit_block(state, propose_block(state, [], timestamp, producer=quorum.producer))


def test_a_copy_shares_the_index_until_one_of_them_commits() -> None:
    state = _Chain(14, "index copy").state
    for _ in range(3):
        _empty_block(state)
    kept = state_index(state).copy()
    other = state.copy()
    assert other.node_index is state.node_index
    for _ in range(2):
        _empty_block(other)
    assert state_index(state) == kept == build_index(state.get)
    assert state_index(other) == build_index(other.get) != kept
    third = other.copy()
    _empty_block(other)  # the original moves on; its copy stays where it was
    assert state_index(third) == build_index(third.get) != state_index(other)
    _empty_block(state)
    _empty_block(third)
    for each in (state, other, third):
        assert state_index(each) == build_index(each.get)


def _reference_sample(sampler: Sampler, items: list[int], k: int) -> list[int]:
    out = list(items)
    for i in range(min(k, len(out))):
        j = i + sampler.uniform(len(out) - i)
        out[i], out[j] = out[j], out[i]
    return out[:k]


@pytest.mark.parametrize("size", [0, 1, 2, 5, 12, 60, 2_000])
def test_a_virtual_sample_draws_what_a_copy_draws(size: int) -> None:
    items = list(range(size))
    for k in (0, 1, 2, 11, 12, 50, size, size + 3):
        seed = f"{size} {k}".encode()
        assert Sampler("t", seed).sample(items, k) == _reference_sample(Sampler("t", seed), items, k)


def test_a_sample_excluding_positions_is_the_sample_of_the_filtered_copy() -> None:
    rng = random.Random(7)
    for case in range(300):
        items = sorted(rng.sample(range(10_000), rng.randrange(0, 60)))
        skips = rng.sample(range(len(items)), rng.randrange(0, len(items) + 1)) if items else []
        kept = [item for position, item in enumerate(items) if position not in set(skips)]
        seed = case.to_bytes(4, "big")
        for k in (0, 1, 5, 50, 70):
            expected = _reference_sample(Sampler("x", seed), kept, k)
            assert Sampler("x", seed).sample(items, k, excluding=skips) == expected
    for outside in (-1, 2):
        with pytest.raises(IndexError):
            Sampler("x", b"").sample([1, 2], 1, excluding=[outside])


def test_a_sample_reads_the_stream_as_uniform_does() -> None:
    """A sample reads the words inline; the draws after it continue the same stream."""
    for k in (3, 64, 65, 200):  # 64 words a refill
        inline, stepwise = Sampler("y", b"seed"), Sampler("y", b"seed")
        assert inline.sample(list(range(1000)), k) == _reference_sample(stepwise, list(range(1000)), k)
        assert [inline.next_u64() for _ in range(70)] == [stepwise.next_u64() for _ in range(70)]


def test_draws_from_sorted_lists_are_the_draws_of_any_order(params: ChainParams) -> None:
    rng = random.Random(3)
    for size in (1, 4, 10, 11, 12, 13, 60, 700):
        active = [NodeKey(rng.randbytes(32)) for _ in range(size)]
        down = [NodeKey(rng.randbytes(32)) for _ in range(rng.randrange(0, 5))]
        seed = rng.randbytes(40)
        assert draw_obligations_quorum(
            sorted(active), sorted(active + down), seed, params
        ) == compute_obligations_quorum(active, down, seed, params)
        assert draw_checkpoint_members(sorted(active), seed) == select_checkpoint_members(active, seed)
        leader = active[rng.randrange(size)]
        for round_ in (0, 1, 300):
            expected = compute_pulse_quorum(leader, active, seed[:32], 9, round_, min_nodes=4)
            assert draw_pulse_quorum(leader, sorted(active), seed[:32], 9, round_, min_nodes=4) == expected
        stranger = NodeKey(rng.randbytes(32))
        assert draw_pulse_quorum(stranger, sorted(active), seed[:32], 9, 0, min_nodes=1) is None


@pytest.fixture
def params() -> ChainParams:
    return create_devnet_genesis(12, "index params", users=1)[0].params
