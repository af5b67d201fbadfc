"""Blocks carry their Pulse round: producer, random value, validator bitset and >= 7 signatures."""

from __future__ import annotations

from pathlib import Path

import msgspec
import plyvel
import pytest

from appchain.cli.main import main
from appchain.home.chain import check_pulse
from appchain.home.store import EVENTS_PREFIX, BlockBody, height_key
from consensus.validation import compute_block_entropy, compute_block_quorum, validate_pulse
from state.block import Block
from state.encoding import decode, encode
from state.errors import InvalidBlock
from tests.conftest import MakeHome
from tests.test_invariants import NODES, USERS, MemoryChain


@pytest.fixture(scope="module")
def signed() -> tuple[MemoryChain, Block]:
    """A chain of 25 Pulse-signed blocks, and the signed block that would come next."""
    from appchain.cli.devchain import DevChainGenerator
    from consensus.local import sign_round_locally

    chain = MemoryChain()
    generator = DevChainGenerator(
        chain,  # type: ignore[arg-type]
        [n.operator for n in NODES] + USERS,
        "pulse",
        events_per_block=5,
        nodes=[(n.node, n.bls_secret) for n in NODES],
    )
    for _ in range(25):
        generator.next_block()
    round_, quorum = generator.choose_round()
    events = generator.make_events(quorum.producer)
    template = chain.propose(
        events, chain.state.timestamp + chain.state.params.block_time, producer=quorum.producer, round_=round_
    )
    # three validators sit this round out, as if they had dropped: 8 take part
    present = [v for v in quorum.validators if v in generator.node_keys][:8]
    keys = {k: v for k, v in generator.node_keys.items() if k == quorum.producer or k in present}
    return chain, sign_round_locally(template.block, quorum, keys, generator.rng.randbytes)


def refuse(chain: MemoryChain, block: Block, match: str) -> None:
    with pytest.raises(InvalidBlock, match=match):
        check_pulse(chain.state, block, chain.random_value_at)


def test_a_signed_block_passes(signed: tuple[MemoryChain, Block]) -> None:
    chain, block = signed
    height = block.header.height
    quorum = validate_pulse(chain.state, block, compute_block_entropy(chain.random_value_at, height))
    assert quorum.producer == block.header.producer
    assert len(block.signatures) >= 7


def test_every_way_to_fake_the_round_is_refused(signed: tuple[MemoryChain, Block]) -> None:
    chain, block = signed
    header = block.header
    replace = msgspec.structs.replace
    others = [
        v
        for v in compute_block_quorum(
            chain.state,
            compute_block_entropy(chain.random_value_at, header.height),
            header.height,
            header.round,
        ).validators
    ]  # type: ignore[union-attr]
    refuse(chain, replace(block, header=replace(header, producer=others[0])), "not round .*'s producer")
    refuse(chain, replace(block, signatures=block.signatures[:6]), "6 validator signatures, 7 of 11 needed")
    refuse(chain, replace(block, signatures=(*block.signatures[:6], block.signatures[0])), "signed twice")
    index, signature = block.signatures[0]
    bad = bytes([signature[0] ^ 1]) + signature[1:]
    refuse(
        chain,
        replace(block, signatures=((index, bad), *block.signatures[1:])),
        f"validator {index} does not verify",
    )
    refuse(chain, replace(block, header=replace(header, validators=0b111111)), "at least 7 of 11 validators")
    refuse(
        chain,
        replace(block, header=replace(header, validators=header.validators | 1 << 11)),
        "at least 7 of 11 validators",
    )
    # the random value is covered by the signatures
    refuse(chain, replace(block, header=replace(header, random_value=bytes(16))), "does not verify")
    # a later round has another quorum
    refuse(chain, replace(block, header=replace(header, round=header.round + 1)), "producer|does not verify")


def test_signatures_by_validators_outside_the_bitset(signed: tuple[MemoryChain, Block]) -> None:
    chain, block = signed
    named = [i for i in range(11) if block.header.validators >> i & 1]
    assert len(named) == 8 == len(block.signatures)
    missing = next(i for i in range(11) if i not in named)
    refuse(
        chain,
        msgspec.structs.replace(block, signatures=(*block.signatures, (missing, bytes(64)))),
        "not in the bitset",
    )


def test_replay_trusts_the_log_unless_asked_to_verify(
    make_home: MakeHome, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_home(30, snapshot_interval=1000)
    key = height_key(EVENTS_PREFIX, 12)
    db = plyvel.DB(str(home.db_path))
    body = decode(db.get(key), BlockBody)
    index, signature = body.signatures[0]
    forged = (index, bytes([signature[0] ^ 1]) + signature[1:])
    db.put(key, encode(BlockBody(body.events, (forged, *body.signatures[1:]))))
    db.close()
    assert main(["replay", "--home", str(home.path), "--json"]) == 0  # a certified log is trusted
    capsys.readouterr()
    assert main(["replay", "--home", str(home.path), "--json", "--verify-signatures"]) == 3
    err = capsys.readouterr().err
    assert (
        f"replay mismatch at height 12: block 12: the signature of validator {index} does not verify" in err
    )


def test_import_with_verify_refuses_a_forged_signature(
    make_home: MakeHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from appchain.home.exchange import ExportedBlock
    from tests.exports import frames_of, write_frames

    home = make_home(15)
    export = tmp_path / "chain.events"
    assert main(["export-events", "--home", str(home.path), "--out", str(export)]) == 0
    frames = frames_of(export)
    exported = decode(frames[1 + 9], ExportedBlock)
    block = exported.block
    frames[1 + 9] = encode(ExportedBlock(msgspec.structs.replace(block, signatures=block.signatures[:6])))
    write_frames(export, frames)
    fresh = make_home(0)
    capsys.readouterr()
    assert main(["import-events", "--home", str(fresh.path), "--in", str(export)]) == 1
    assert (
        "import refused at height 9: block 9: 6 validator signatures, 7 of 11 needed"
        in capsys.readouterr().err
    )
