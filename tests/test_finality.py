"""Checkpoint certificates on the chain, finality, export/import of certificates, the light client."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from appchain.cli.main import main
from appchain.home.chain import ChainError
from consensus.checkpoint import aggregate_certificate, sign_checkpoint
from consensus.light import LightClient, Untrusted
from genesis.build import create_genesis_block
from state.block import compute_block_hash
from state.checkpoints import compute_quorum_commitment, decode_checkpoint_quorum, get_checkpoint_quorum
from state.errors import InvalidBlock
from state.ledger import account_key
from state.sns import NAME_PREFIX
from state.transition import commit_block, execute_block
from state.types import Hash32
from state.view import Overlay
from tests.conftest import MakeHome
from tests.helpers import next_block


@pytest.fixture(scope="module")
def chain_home(tmp_path_factory: pytest.TempPathFactory, devnet_dir: Path):  # type: ignore[no-untyped-def]
    from appchain.home.home import Home, NodeConfig
    from tests.conftest import extend

    home, _ = Home.init(
        tmp_path_factory.mktemp("finality") / "home",
        devnet_dir / "genesis.json",
        NodeConfig(sync_writes=False),
    )
    with home.open_chain() as chain:
        extend(chain, home, 41)
    return home


def test_checkpoints_are_certified_and_final(chain_home) -> None:  # type: ignore[no-untyped-def]
    with chain_home.open_chain() as chain:
        assert chain.height == 41
        assert chain.final_height == 40
        for height in range(4, 41, 4):
            certificate = chain.store.get_certificate(height)
            assert certificate is not None
            chain.check_certificate(certificate)
        assert chain.store.get_certificate(41) is None


def test_bad_certificates_are_refused(chain_home) -> None:  # type: ignore[no-untyped-def]
    with chain_home.open_chain() as chain:
        good = chain.store.get_certificate(40)
        assert good is not None
        cases = [
            (msgspec.structs.replace(good, height=41), "no checkpoint block at height 41"),
            (msgspec.structs.replace(good, block_hash=Hash32(b"\x01" * 32)), "for another block"),
            (msgspec.structs.replace(good, signers=bytes(len(good.signers))), "0 signers, 14 needed"),
        ]
        for bad, message in cases:
            with pytest.raises(ChainError, match=message):
                chain.check_certificate(bad)
        assert chain.final_height == 40


def test_the_header_commits_to_the_next_quorum_and_a_wrong_commitment_is_refused(chain_home) -> None:  # type: ignore[no-untyped-def]
    with chain_home.open_chain() as chain:
        header = chain.store.get_header(36)
        quorum = get_checkpoint_quorum(Overlay(chain.state.get), 40)
        assert header is not None and quorum is not None
        assert header.next_checkpoint_quorum == compute_quorum_commitment([m.bls_key for m in quorum.members])
        assert chain.store.get_header(37).next_checkpoint_quorum == bytes(32)  # type: ignore[union-attr]
    with chain_home.open_chain() as chain:
        state = chain.state.copy()
    for _ in range(3):  # up to the next checkpoint height, 44
        commit_block(state, next_block(state, []))
    pending = next_block(state, [])
    forged = msgspec.structs.replace(
        pending.block,
        header=msgspec.structs.replace(pending.block.header, next_checkpoint_quorum=Hash32(b"\x02" * 32)),
    )
    with pytest.raises(InvalidBlock, match="checkpoint quorum commitment"):
        execute_block(state, forged)


def test_export_and_import_carry_finality(chain_home, make_home: MakeHome, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    export = tmp_path / "chain.events"
    assert main(["export-events", "--home", str(chain_home.path), "--out", str(export)]) == 0
    fresh = make_home(0)
    assert main(["import-events", "--home", str(fresh.path), "--in", str(export)]) == 0
    with fresh.open_chain() as chain:
        assert chain.height == 41 and chain.final_height == 40


def test_light_client_walks_from_genesis_and_checks_proofs(chain_home, devnet_genesis) -> None:  # type: ignore[no-untyped-def]
    genesis_header = create_genesis_block(devnet_genesis).block.header
    client = LightClient(devnet_genesis.chain_id, genesis_header, devnet_genesis.params.checkpoint_interval)
    with chain_home.open_chain() as chain:
        assert chain.store.get_header(0) == genesis_header
        # the node serves: each checkpoint header, its certificate, and the quorum's keys
        states = {}
        for height in range(4, 41, 4):
            header = chain.store.get_header(height)
            certificate = chain.store.get_certificate(height)
            quorum = get_checkpoint_quorum(Overlay(chain.state.get), height)
            assert header is not None and certificate is not None and quorum is not None
            keys = [m.bls_key for m in quorum.members]
            if height == 8:
                with pytest.raises(Untrusted, match="committed to"):
                    client.accept_checkpoint(header, certificate, list(reversed(keys)))
                forged = msgspec.structs.replace(header, state_root=Hash32(bytes(32)))
                with pytest.raises(Untrusted, match="another block"):
                    client.accept_checkpoint(forged, certificate, keys)
            client.accept_checkpoint(header, certificate, keys)
            states[height] = header
        assert client.height == 40
        # a value at the tip's checkpoint? The client trusts 40, and proofs must be at 40.
        with pytest.raises(Untrusted, match="height 41 is not trusted"):
            client.verify_value(41, b"k", None, chain.state.prove(b"k")[1])
        below = [chain.store.get_header(h) for h in (37, 38, 39)]
        client.accept_linked(below)  # type: ignore[arg-type]
        with pytest.raises(Untrusted, match="no trusted header above"):
            client.accept_linked([chain.store.get_header(30)])  # type: ignore[list-item]
    # proofs against the state of a certified height: replay to it
    from appchain.home.chain import replay_blocks
    from appchain.home.store import BlockStore
    from genesis.build import create_genesis_state

    with BlockStore(chain_home.db_path) as store:
        state, _ = create_genesis_state(devnet_genesis)
        replay_blocks(state, store.iter_blocks(1, 40))
    assert compute_block_hash(states[40]) == state.block_hash
    account = next(k for k, _ in state.prefixed(b"acct/"))
    value, proof = state.prove(account_key(account))
    client.verify_value(40, account_key(account), value, proof)
    with pytest.raises(Untrusted):
        client.verify_value(40, account_key(account), (value or b"") + b"x", proof)
    # absence: a name nobody bought
    absent = NAME_PREFIX + b"\x00" * 32
    none_value, absence = state.prove(absent)
    assert none_value is None
    client.verify_value(40, absent, None, absence)
    with pytest.raises(Untrusted):
        client.verify_value(40, absent, b"claimed", absence)


def test_a_certificate_signed_by_outsiders_is_refused(chain_home) -> None:  # type: ignore[no-untyped-def]
    from state.crypto import bls

    with chain_home.open_chain() as chain:
        height = 40
        header = chain.store.get_header(height)
        quorum = get_checkpoint_quorum(Overlay(chain.state.get), height)
        assert header is not None and quorum is not None
        outsiders = [bls.secret_key_from_seed(bytes([0x90 + i]) * 32) for i in range(len(quorum.members))]
        votes = {
            i: sign_checkpoint(s, chain.genesis.chain_id, height, compute_block_hash(header))
            for i, s in enumerate(outsiders)
        }
        forged = aggregate_certificate(height, compute_block_hash(header), votes, len(quorum.members))
        with pytest.raises(ChainError, match="does not verify"):
            chain.check_certificate(forged)


def test_the_checkpoint_interval_is_the_chains_parameter(tmp_path: Path) -> None:
    """A chain whose genesis says ``checkpoint_interval`` 3: its state draws the quorums of
    heights 3, 6, 9…, headers commit to them there, certificates finalise them, and a light client
    given the interval walks 3 by 3 and refuses a step of mainnet's 4."""
    from appchain.home.genesis_files import write_devnet
    from appchain.home.home import Home, NodeConfig
    from genesis.presets import DEVNET
    from tests.conftest import extend

    params = msgspec.structs.replace(DEVNET, checkpoint_interval=3)
    genesis = write_devnet(
        tmp_path / "net" / "genesis.json", nodes=12, seed="interval", users=2, params=params
    )
    home, _ = Home.init(tmp_path / "home", tmp_path / "net" / "genesis.json", NodeConfig(sync_writes=False))
    with home.open_chain() as chain:
        extend(chain, home, 12, per_block=2)
        assert chain.final_height == 12
        assert [h for h in range(1, 13) if chain.store.get_certificate(h) is not None] == [3, 6, 9, 12]
        assert [h for h in range(13) if any(chain.store.get_header(h).next_checkpoint_quorum)] == [
            0,
            3,
            6,
            9,
            12,
        ]
        with pytest.raises(ValueError, match="starts from a checkpoint header"):
            LightClient(genesis.chain_id, chain.store.get_header(4), 3)  # type: ignore[arg-type]
        client = LightClient(genesis.chain_id, chain.store.get_header(0), 3)  # type: ignore[arg-type]
        wrong = chain.store.get_header(4)
        with pytest.raises(Untrusted, match="the next checkpoint is 3, not 4"):
            client.accept_checkpoint(wrong, chain.store.get_certificate(3), [])  # type: ignore[arg-type]
        for height in (3, 6, 9, 12):
            quorum = chain.store.get_checkpoint_quorum(height, 3)
            assert quorum is not None
            keys = [m.bls_key for m in decode_checkpoint_quorum(quorum).members]
            client.accept_checkpoint(
                chain.store.get_header(height), chain.store.get_certificate(height), keys
            )  # type: ignore[arg-type]
        assert client.height == 12
