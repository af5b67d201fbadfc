"""``appchain tx`` says a transaction is final only once the light client proved it: a certified
checkpoint at or above its block, the block's headers linked to it, and the transaction among the
events that hash to the block's ``events_root`` (issue 18, point 4).

The node is the node's own JSON-RPC handlers over HTTP (:func:`tests.servers.serve_node`) on a
chain in this process; sending a transaction makes its "producer" append four Pulse-signed blocks
(:class:`~appchain.cli.devchain.DevChainGenerator`), the first holding the transaction, the fourth a
certified checkpoint. The lying nodes change one thing each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from appchain.cli.devchain import DevChainGenerator
from appchain.cli.main import main
from appchain.home.boundary import Faults
from appchain.home.chain import Chain
from appchain.home.home import Home, NodeConfig
from appchain.home.keyfile import write_seed
from appchain.node.ledger import ChainLedger
from consensus.mempool import Mempool
from genesis.devnet import load_dev_accounts, load_dev_nodes
from state.block import Block
from state.encoding import decode, encode
from state.events import Event, Transaction, compute_event_hash
from state.types import NodeKey
from tests.conftest import extend
from tests.servers import FakeServer, Tamper, serve_node


class Including(DevChainGenerator):
    """The dev chain's blocks, with the transactions a wallet sent first in the next one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting: list[Transaction] = []

    def make_events(self, producer: NodeKey) -> list[Event]:
        events = [*self.waiting, *super().make_events(producer)]
        self.waiting = []
        return events


class ChainNode:
    """What the JSON-RPC handlers read of a node (its chain, ledger, mempool), and a producer that
    appends four blocks on each transaction it is sent: ``include`` it or not, ``certify`` the
    checkpoint or not."""

    def __init__(self, chain: Chain, home: Home, include: bool = True, certify: bool = True) -> None:
        self.chain = chain
        self.ledger = ChainLedger(chain)
        self.metrics = None
        self.faults = Faults(lambda *args, **fields: None)
        self.progress = lambda: None
        self.core = SimpleNamespace(node_key=bytes(32), mempool=Mempool(chain.state.chain_id))
        self.include = include
        self.certify = certify
        accounts = load_dev_accounts(home.keys_path / "dev-accounts.json")[:-1]  # the last: the wallet's
        nodes = load_dev_nodes(home.keys_path / "dev-nodes.json")
        self.producer = Including(chain, accounts, "wallet", events_per_block=3, nodes=nodes, mix=False)

    @property
    def mempool(self) -> Mempool:
        mempool: Mempool = self.core.mempool
        return mempool

    def submit(self, tx: Transaction) -> bytes:
        tx_hash = self.mempool.add(tx, self.chain.state, time.time())
        if self.include:
            self.producer.waiting.append(tx)
        for _ in range(4):
            pending = self.producer.next_block()
            certificate = self.producer.certify_tip() if self.certify else None
            if certificate is not None:
                self.chain.add_certificate(certificate)
            self.mempool.on_block(pending.block.events, self.chain.state, time.time())
        return tx_hash


@pytest.fixture
def home(tmp_path: Path, devnet_dir: Path) -> Iterator[tuple[Home, Chain]]:
    home, _ = Home.init(tmp_path / "node", devnet_dir / "genesis.json", NodeConfig(sync_writes=False))
    with home.open_chain() as chain:
        extend(chain, home, 16, per_block=5)
        assert chain.final_height == 16
        yield home, chain


def wallet_key(home: Home, tmp_path: Path) -> Path:
    key = tmp_path / "wallet.key"
    write_seed(key, load_dev_accounts(home.keys_path / "dev-accounts.json")[-1].seed)
    return key


def send(
    node: ChainNode,
    home: Home,
    tmp_path: Path,
    devnet_dir: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: Tamper | None = None,
) -> tuple[int, str, str]:
    """``tx transfer`` to ``node`` served over HTTP (through ``tamper``); exit code, stdout, stderr."""
    with FakeServer(serve_node(node, tamper)) as server:
        argv = ["tx", "transfer", "--key", str(wallet_key(home, tmp_path)), "--rpc", server.url,
                "--to", "42" * 32, "--amount", "1.5", "--genesis", str(devnet_dir / "genesis.json"),
                "--trust-file", str(tmp_path / "trust.json"), "--timeout", "20", "--json"]  # fmt: skip
        code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_transaction_is_final_once_a_certified_block_holds_it(
    home: tuple[Home, Chain], tmp_path: Path, devnet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = ChainNode(home[1], home[0])
    code, out, err = send(node, home[0], tmp_path, devnet_dir, capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["verified"] and shown["height"] == 17 and shown["final_height"] == 20
    block = home[1].store.get_block(17)
    assert shown["tx_hash"] in [compute_event_hash(e).hex() for e in block.events]
    kept = json.loads((tmp_path / "trust.json").read_text())["chains"]
    assert [entry["height"] for entry in kept.values()] == [20]  # the checkpoints it walked are kept


def test_a_block_that_lists_the_transaction_but_does_not_hold_it_is_a_lie(
    home: tuple[Home, Chain], tmp_path: Path, devnet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = ChainNode(home[1], home[0], include=False)  # accepted, never included

    def lists_it(method: str, params: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        if method == "get_block" and params["height"] == 17 and node.mempool.txs:
            result["tx_hashes"].append(next(iter(node.mempool.txs)).hex())
        return result

    code, out, err = send(node, home[0], tmp_path, devnet_dir, capsys, lists_it)
    assert code == 6 and "is final" not in out, (out, err)
    assert "lied: its block 17 does not hold the transaction" in err and err.count("\n") == 1


def test_a_block_whose_events_do_not_hash_to_its_root_is_a_lie(
    home: tuple[Home, Chain], tmp_path: Path, devnet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = ChainNode(home[1], home[0], include=False)

    def adds_it(method: str, params: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        if method == "get_block" and params["height"] == 17 and node.mempool.txs:
            (tx,) = node.mempool.txs.values()
            block = decode(bytes.fromhex(result["blob"]), Block)  # type: ignore[arg-type]
            forged = msgspec.structs.replace(block, events=(tx, *block.events))
            result["blob"] = encode(forged).hex()
            result["tx_hashes"].insert(0, compute_event_hash(tx).hex())
        return result

    code, out, err = send(node, home[0], tmp_path, devnet_dir, capsys, adds_it)
    assert code == 6 and "is final" not in out, (out, err)
    assert "the events of its block 17 do not hash to its events root" in err


def test_a_final_height_no_certificate_backs_is_not_believed(
    home: tuple[Home, Chain], tmp_path: Path, devnet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = ChainNode(home[1], home[0], certify=False)  # includes it; no quorum certifies block 20

    def claims_final(method: str, params: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        if method == "get_info":
            result["immutable_height"] = result["height"] - 1  # every block "final"
        return result

    code, out, err = send(node, home[0], tmp_path, devnet_dir, capsys, claims_final)
    assert code != 0 and "is final" not in out, (out, err)
    assert "height 20 is not final" in err and err.count("\n") == 1
