"""PROTOCOL.md §4a at the block level: Pulse quorums of every active node on a small network,
their ⌈7V/11⌉ thresholds, and 16-bit rounds.

The chain here is a 4-node devnet (``pulse_min_nodes`` 4): its quorums are 1 producer and 3
validators, and a block needs 2 of their signatures."""

from __future__ import annotations

import random

import msgspec
import pytest

from consensus.local import sign_round_locally
from consensus.quorum import PulseQuorum
from consensus.validation import check_pulse, compute_block_entropy, compute_block_quorum
from genesis.build import create_genesis_state
from genesis.devnet import create_devnet_genesis
from state.block import Block
from state.errors import InvalidBlock
from state.state import State
from state.transition import apply_block, propose_block

GENESIS, NODES, _ = create_devnet_genesis(4, "small networks", users=2)
KEYS = {node.node.public_key: node.node for node in NODES}


class Chain:
    def __init__(self) -> None:
        self.state: State = create_genesis_state(GENESIS)[0]
        self.random_values = [bytes(16)]
        self.rng = random.Random(4)

    def quorum(self, round_: int) -> PulseQuorum:
        height = self.state.height + 1
        entropy = compute_block_entropy(self.random_values.__getitem__, height)
        quorum = compute_block_quorum(self.state, entropy, height, round_)
        assert quorum is not None
        return quorum

    def signed(self, round_: int, signers: int) -> Block:
        """The next block made in ``round_`` by its producer and the first ``signers`` validators."""
        quorum = self.quorum(round_)
        template = propose_block(
            self.state,
            [],
            self.state.timestamp + GENESIS.params.block_time,
            producer=quorum.producer,
            round_=round_,
        )
        present = set(quorum.validators[:signers]) | {quorum.producer}
        keys = {key: signer for key, signer in KEYS.items() if key in present}
        return sign_round_locally(template.block, quorum, keys, self.rng.randbytes)

    def check(self, block: Block) -> None:
        check_pulse(self.state, block, self.random_values.__getitem__)

    def append(self, block: Block) -> None:
        self.check(block)
        apply_block(self.state, block)
        self.random_values.append(block.header.random_value)


def test_a_four_node_chain_makes_blocks_with_two_of_three_validator_signatures() -> None:
    chain = Chain()
    assert GENESIS.params.pulse_min_nodes == 4
    for _ in range(6):
        quorum = chain.quorum(0)
        assert len(quorum.validators) == 3 and quorum.threshold == 2
        assert {quorum.producer, *quorum.validators} == set(KEYS)  # every node takes part
        chain.append(chain.signed(0, signers=2))  # one of the four is down: the chain goes on
    assert chain.state.height == 6


def test_a_block_with_too_few_signatures_for_its_quorum_is_refused() -> None:
    chain = Chain()
    block = chain.signed(0, signers=2)
    with pytest.raises(InvalidBlock, match="1 validator signatures, 2 of 3 needed"):
        chain.check(msgspec.structs.replace(block, signatures=block.signatures[:1]))
    one = msgspec.structs.replace(block.header, validators=block.header.validators & -block.header.validators)
    with pytest.raises(InvalidBlock, match="must name at least 2 of 3 validators"):
        chain.check(msgspec.structs.replace(block, header=one))
    chain.check(block)


def test_a_backup_round_on_a_small_network_has_the_leader_among_its_validators() -> None:
    chain = Chain()
    leader = chain.quorum(0).producer
    for round_ in (1, 2, 7):
        quorum = chain.quorum(round_)
        assert quorum.producer != leader and leader in quorum.validators and len(quorum.validators) == 3
    chain.append(chain.signed(3, signers=2))
    assert chain.state.height == 1


@pytest.mark.parametrize("round_", [255, 256, 300, 65_535])
def test_a_round_above_255_is_a_round(round_: int) -> None:
    """Rounds are 16 bits (§4a): a height that failed 256 rounds still makes its block."""
    chain = Chain()
    block = chain.signed(round_, signers=3)
    assert block.header.round == round_
    chain.append(block)
    assert chain.state.height == 1


def test_a_round_beyond_16_bits_is_refused() -> None:
    chain = Chain()
    block = chain.signed(65_535, signers=3)
    beyond = msgspec.structs.replace(block, header=msgspec.structs.replace(block.header, round=65_536))
    with pytest.raises(InvalidBlock, match="is not a Pulse round"):
        chain.check(beyond)


def test_no_pulse_quorum_below_the_floor() -> None:
    from consensus.quorum import compute_pulse_quorum

    keys = sorted(KEYS)
    assert compute_pulse_quorum(keys[0], keys[:3], bytes(32), 1, 0, min_nodes=4) is None
    assert compute_pulse_quorum(keys[0], keys, bytes(32), 1, 0, min_nodes=4) is not None
