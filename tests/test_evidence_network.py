"""Equivocation between real processes: the others catch it, keep it and serve it.

Pulse needs 12 active service nodes, so the network is a 12-node devnet whose chain is built
to height 8 (final) in-process and copied into every home; 11 of them run as ``appchain start``
processes. The 12th is the equivocator: this test, holding that validator's keys (its node never
starts), connects to the others over p2p, sends uptime proofs as a live node would, and sends
every node two checkpoint votes for height 8, BLS-signed with its key: one for block 8, one for
another block. Every running node must record the evidence, ``get_evidence`` must serve it in
a form ``verify_evidence`` accepts, and blocks must keep becoming final.

The equivocator is the node that leads Pulse last (the tail of the reward queue), so the rounds
of the next heights never wait for it as their producer.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import trio

from appchain.home.home import Home
from appchain.lab.testnet import (
    PORTS_PER_NODE,
    NetworkMember,
    poll_status,
    start_process,
    stop_processes,
    write_testnet,
)
from appchain.node.settings import VERSION
from consensus.checkpoint import compute_checkpoint_message
from consensus.evidence import Evidence, EvidenceKind, verify_evidence
from consensus.messages import CheckpointVote
from consensus.uptime import UptimeProof, sign_proof
from genesis.presets import DEVNET
from p2p.host import Host, HostConfig
from state.checkpoints import get_checkpoint_quorum
from state.crypto import bls
from state.encoding import decode, encode
from state.hashing import hash_tagged
from state.state import state_index
from state.types import BlsPublicKey, Hash32, NodeKey
from state.view import Overlay
from tests.conftest import extend
from tests.test_network import free_port_block, with_node_logs
from tests.test_statesync_network import rpc, wait_in_thread

NODES = 12
BUILT = 8
"""The chain the nodes start from: blocks 1..8, final (8 is a checkpoint)."""
START_LEAD = 6
"""Seconds from building the chain to block 8's timestamp: round 0 of height 9 starts a block
time later, about when the processes are up."""


class Equivocator:
    """A validator's keys in this process: p2p, uptime proofs, and two votes for one slot."""

    def __init__(self, member: NetworkMember, chain_id: str) -> None:
        home = Home(member.home)
        self.key, self.bls_secret = home.load_node_keys()
        self.config = home.load_config()
        self.member = member
        self.host = Host(
            HostConfig(chain_id=chain_id, listen_port=member.p2p_port, version=VERSION),
            self.key,
            lambda sender, payload: None,  # it listens to nothing
        )

    def send_to_all(self, payload: bytes) -> None:
        for peer in self.host.connected:
            self.host.send(peer, payload)

    def uptime_proof(self) -> bytes:
        proof = UptimeProof(
            NodeKey(self.key.public_key),
            "127.0.0.1",
            self.member.p2p_port,
            self.config.served_storage_port,
            (1, 0, 0),
            int(time.time()),
            BlsPublicKey(bls.public_key(self.bls_secret)),
        )
        return encode(sign_proof(proof, self.key))

    def votes(self, chain_id: str, height: int, member: int, block_hash: Hash32) -> list[bytes]:
        other = Hash32(hash_tagged("another block", bytes(block_hash)))
        return [
            encode(
                CheckpointVote(
                    height,
                    voted,
                    member,
                    bls.sign(self.bls_secret, compute_checkpoint_message(chain_id, height, voted)),
                )
            )
            for voted in (block_hash, other)
        ]


def recorded(member: NetworkMember) -> list[dict[str, Any]]:
    try:
        evidence: list[dict[str, Any]] = rpc(member, "get_evidence", {})["result"]["evidence"]
    except OSError:
        return []
    return evidence


def test_an_equivocating_validator_is_caught_by_every_running_node(tmp_path: Path) -> None:
    started = time.monotonic()
    members = write_testnet(
        tmp_path / "net",
        NODES,
        base_port=free_port_block(PORTS_PER_NODE * NODES),
        seed="evidence",
        genesis_time=int(time.time()) + START_LEAD - BUILT * DEVNET.block_time // 1000,  # s; block_time: ms
        sync_writes=False,
    )
    source = Home(members[0].home)
    with source.open_chain() as chain:
        extend(chain, source, BUILT, per_block=2)
        assert (chain.height, chain.final_height) == (BUILT, BUILT)
        state = chain.state
        chain_id, block_hash = state.chain_id, state.block_hash
        last_leader = NodeKey(state_index(state).queue[-1][2])
        quorum = get_checkpoint_quorum(Overlay(state.get), BUILT)
        assert quorum is not None
    position = next(i for i, m in enumerate(quorum.members) if m.node_key == last_leader)
    cheat = next(m for m in members if m.node_key == last_leader)
    honest = [m for m in members if m is not cheat]
    for member in honest:
        if member is not members[0]:  # the chain was built in node 0's home
            shutil.rmtree(Home(member.home).db_path)
            shutil.copytree(source.db_path, Home(member.home).db_path)
    processes = [start_process(m.home) for m in honest]
    try:
        trio.run(_equivocate, Equivocator(cheat, chain_id), honest, chain_id, position, block_hash)
    except* AssertionError as group:
        failure = group.exceptions[0]
        assert isinstance(failure, AssertionError)
        raise with_node_logs(failure, honest, lines=15) from None
    finally:
        stop_processes(processes)
    print(f"caught by {len(honest)} nodes, final height 12 reached: {time.monotonic() - started:.1f} s")
    warning = f"kind=checkpoint_vote height={BUILT} round=0 stage=100 signer={cheat.node_key.hex()}"
    for member in honest:
        lines = (member.home / "node.log").read_text().splitlines()
        assert len([line for line in lines if " warn equivocation " in line and warning in line]) == 1


async def _equivocate(
    cheat: Equivocator, honest: list[NetworkMember], chain_id: str, position: int, block_hash: Hash32
) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(cheat.host.run)
        for member in honest:
            cheat.host.add_target(NodeKey(member.node_key), "127.0.0.1", member.p2p_port)
        await wait_in_thread(
            "the equivocator's connections", lambda: len(cheat.host.connected) == len(honest), 60
        )
        nursery.start_soon(_send_proofs, cheat)
        for payload in cheat.votes(chain_id, BUILT, position, block_hash):
            cheat.send_to_all(payload)

        def caught_everywhere() -> bool:
            return all(len(recorded(m)) == 1 for m in honest)

        await wait_in_thread("the evidence on every node", caught_everywhere, 30)
        for member in honest:
            [entry] = recorded(member)
            evidence = decode(bytes.fromhex(entry["blob"]), Evidence)
            verify_evidence(evidence)
            assert evidence.kind == EvidenceKind.CHECKPOINT_VOTE and evidence.signer == cheat.key.public_key
            assert (evidence.height, entry["first"]["fields"]["block_hash"]) == (BUILT, block_hash.hex())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{honest[0].rpc_port}/metrics", timeout=10).read()
        assert b'appchain_evidence_recorded_total{kind="checkpoint_vote"} 1.0' in metrics

        def final_everywhere() -> bool:
            return all((poll_status(m) or {}).get("final_height", 0) >= BUILT + 4 for m in honest)

        await wait_in_thread("blocks final after the equivocation", final_everywhere, 60)
        nursery.cancel_scope.cancel()


async def _send_proofs(cheat: Equivocator) -> None:
    """Uptime proofs, as the live node would send them: without them its quorum would vote it
    out at the end of its grace period, and 11 active nodes cannot form a Pulse quorum."""
    while True:
        cheat.send_to_all(cheat.uptime_proof())
        await trio.sleep(4.0)
