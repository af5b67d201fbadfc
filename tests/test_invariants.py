"""Hypothesis: any sequence of valid and invalid events keeps the state's invariants.

Blocks come from the dev-chain generator (every event kind, seeded by Hypothesis); between them,
random invalid events (a mutated copy of a valid one) must be refused with the root unchanged.
After every block: supply conserved to the atomic unit, one state per node, swarms sound, one
owner per name, stakes equal to their contributions (:mod:`state.invariants`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appchain.cli.devchain import DevChainGenerator
from appchain.home.chain import check_pulse
from consensus.local import sign_round_locally
from genesis.build import create_genesis_state
from genesis.devnet import create_devnet_genesis
from state.errors import InvalidBlock
from state.events import StateChange, Transaction
from state.invariants import check_invariants
from state.state import State
from state.transition import PendingBlock, apply_block, propose_block, with_final_block
from state.types import Atomic, Nonce

GENESIS, NODES, USERS = create_devnet_genesis(14, "invariants", users=8)


class MemoryChain:
    """What the generator needs of a chain, kept in memory (Pulse data checked on every block)."""

    def __init__(self) -> None:
        self.state: State = create_genesis_state(GENESIS)[0]
        self.random_values: list[bytes] = [bytes(16)]
        self.headers: list[Any] = [create_genesis_state(GENESIS)[1].block.header]
        self.certificates: dict[int, Any] = {}

    @property
    def height(self) -> int:
        return self.state.height

    def random_value_at(self, height: int) -> bytes:
        return self.random_values[height]

    def propose(self, events: list[Any], timestamp: int, *, producer: Any, round_: int = 0) -> PendingBlock:
        return propose_block(self.state, events, timestamp, producer=producer, round_=round_)

    def append_pending(self, pending: PendingBlock) -> None:
        check_pulse(self.state, pending.block, self.random_value_at)
        apply_block(self.state, pending.block)
        self.random_values.append(pending.block.header.random_value)
        self.headers.append(pending.block.header)

    def add_certificate(self, certificate: Any) -> None:
        self.certificates[certificate.height] = certificate


def mutate(event: Any, how: str) -> Any | None:
    if isinstance(event, StateChange):
        return msgspec.structs.replace(event, votes=event.votes[: len(event.votes) - 1 - (how == "funds")])
    if not isinstance(event, Transaction):
        return None
    if how == "nonce":
        return msgspec.structs.replace(event, nonce=Nonce(event.nonce + 3))
    if how == "signature":
        return msgspec.structs.replace(event, signature=bytes(64))
    if how == "funds" and hasattr(event, "amount"):
        return msgspec.structs.replace(event, amount=Atomic(2**62))
    return None


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    blocks=st.integers(10, 60),
    faults=st.lists(
        st.tuples(st.integers(0, 59), st.sampled_from(["nonce", "signature", "funds"])), max_size=6
    ),
)
def test_invariants_hold_for_any_event_sequence(
    seed: int, blocks: int, faults: list[tuple[int, str]]
) -> None:
    chain = MemoryChain()
    generator = DevChainGenerator(
        chain,  # type: ignore[arg-type]
        [n.operator for n in NODES] + USERS,
        str(seed),
        events_per_block=25,
        nodes=[(n.node, n.bls_secret) for n in NODES],
    )
    for height in range(blocks):
        round_, quorum = generator.choose_round()
        events = generator.make_events(quorum.producer)
        for _, how in (f for f in faults if f[0] == height):
            for event in events:
                bad = mutate(event, how)
                if bad is None:
                    continue
                root, entries = chain.state.root, list(chain.state.items())
                try:
                    propose_block(
                        chain.state,
                        [bad],
                        chain.state.timestamp + chain.state.params.block_time,
                        producer=quorum.producer,
                    )
                except InvalidBlock:
                    pass
                else:
                    raise AssertionError(f"a {how} mutation of {type(event).__name__} was accepted")
                assert chain.state.root == root and list(chain.state.items()) == entries
                break
        template = chain.propose(
            events,
            chain.state.timestamp + chain.state.params.block_time,
            producer=quorum.producer,
            round_=round_,
        )
        block = sign_round_locally(template.block, quorum, generator.node_keys, generator.rng.randbytes)
        chain.append_pending(with_final_block(template, block))
        problems = check_invariants(chain.state, GENESIS.total_supply)
        assert problems == [], (height, problems)


def test_a_node_index_that_drifted_from_the_records_is_reported() -> None:
    """The index check can fail: a stale list or queue is caught against the scan."""
    chain = MemoryChain()
    generator = DevChainGenerator(
        chain,  # type: ignore[arg-type]
        [n.operator for n in NODES] + USERS,
        "drift",
        events_per_block=10,
        nodes=[(n.node, n.bls_secret) for n in NODES],
    )
    for _ in range(3):
        round_, quorum = generator.choose_round()
        template = chain.propose(
            generator.make_events(quorum.producer),
            chain.state.timestamp + chain.state.params.block_time,
            producer=quorum.producer,
            round_=round_,
        )
        block = sign_round_locally(template.block, quorum, generator.node_keys, generator.rng.randbytes)
        chain.append_pending(with_final_block(template, block))
    index = chain.state.node_index
    assert index is not None and check_invariants(chain.state, GENESIS.total_supply) == []
    chain.state.node_index = dataclasses.replace(index, active=index.active[1:])
    assert any("node index" in p for p in check_invariants(chain.state, GENESIS.total_supply))
    chain.state.node_index = dataclasses.replace(index, queue=index.queue[::-1])
    assert any("reward queue" in p for p in check_invariants(chain.state, GENESIS.total_supply))
