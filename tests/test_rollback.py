"""Rolling back the non-final tail: exact state, never below finality, and the chain goes on."""

from __future__ import annotations

import pytest

from appchain.cli.main import main
from appchain.home.chain import ChainError, replay_blocks
from genesis.build import create_genesis_state
from state.nodeindex import build_index
from tests.conftest import MakeHome, extend


def test_rollback_restores_the_exact_state_and_the_chain_goes_on(make_home: MakeHome, devnet_genesis) -> None:  # type: ignore[no-untyped-def]
    home = make_home(15, snapshot_interval=4)
    with home.open_chain() as chain:
        assert chain.final_height == 12
        blocks = list(chain.store.iter_blocks(1, 13))
        chain.rollback(13)
        assert chain.height == 13 and chain.store.get_header(14) is None
        fresh, _ = create_genesis_state(devnet_genesis)
        replay_blocks(fresh, blocks)
        assert list(chain.state.items()) == list(fresh.items())
        assert chain.state.root == fresh.root and chain.state.block_hash == fresh.block_hash
        # the derived node index was moved back with the undo values, not rebuilt
        assert chain.state.node_index is not None and chain.state.node_index == build_index(fresh.get)
        extend(chain, home, 3, seed="after rollback")  # another branch grows on top
        assert chain.height == 16
    with home.open_chain() as reopened:  # and the handshake replays it
        assert reopened.height == 16


def test_rollback_never_goes_below_the_final_block(make_home: MakeHome) -> None:
    home = make_home(10)
    with home.open_chain() as chain:
        with pytest.raises(ChainError, match="below the final block 8"):
            chain.rollback(7)
        with pytest.raises(ChainError, match="not below the tip"):
            chain.rollback(10)
        assert chain.height == 10


def test_rollback_command(make_home: MakeHome, capsys: pytest.CaptureFixture[str]) -> None:
    home = make_home(10)
    assert main(["rollback", "--home", str(home.path), "--height", "9"]) == 0
    assert "rolled back to height 9" in capsys.readouterr().out
    assert main(["rollback", "--home", str(home.path), "--height", "3"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot roll back below the final block 8")
