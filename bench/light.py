"""What a light client pays: proof size and verify time as the state grows, one value verified
from a trusted checkpoint, and a walk of 1,000 checkpoint certificates, BLS on arkworks against
py-ecc.

In one run:

1. for 10^4, 10^5 and 10^6 keys (``--sizes``) of account-sized values in our sparse Merkle tree:
   the mean encoded proof size and the time to verify one proof, as a multiple of one raw
   ``blake3_256`` call measured in the same run (a proof costs about one hash per level);
2. one value verified from a trusted checkpoint the way ``appchain query`` does it: a
   ``get_state_proof`` answer (JSON text, as it comes off the wire) decoded, its header matched
   against the trusted checkpoint, its proof checked (``VerifyingClient.verify_answer``), against
   the largest tree; aim: under 10 ms;
3. the walk over ``--checkpoints`` (1,000) ``get_checkpoint`` answers: each certificate carries 14
   of a 20-key quorum and is checked against the quorum the previous header committed to; on
   arkworks (the node's backend) and, for ``--pyecc-checkpoints`` of them, on py-ecc, as a ratio
   per checkpoint; aim: 1,000 in under 10 s. The HTTP round trips are not in it: the client asks
   for 50 checkpoints per request (``bench/rpc.py`` measures requests).

The certificates are real BLS aggregates: 14 same-message signatures aggregate to one signature
under the sum of the 14 secret keys, so each is made with one signing instead of fourteen.
Run: ``python -m bench.light [--sizes 10000,100000,1000000]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from appchain.client.lightclient import RpcSource, Trusted, VerifyingClient
from consensus.checkpoint import CheckpointCertificate, compute_checkpoint_message, encode_bitset
from genesis.presets import MAINNET
from state.block import Header, compute_block_hash
from state.checkpoints import CHECKPOINT_QUORUM_SIZE, compute_quorum_commitment
from state.crypto import bls
from state.crypto.bls import CURVE_ORDER, BlsSecretKey
from state.encoding import encode
from state.hashing import blake3_256
from state.ledger import Account, account_key
from state.smt import SparseMerkleTree, verify_proof
from state.types import Atomic, Hash32, Height, Nonce

CHAIN_ID = "bench-light"
INTERVAL = MAINNET.checkpoint_interval
SIGNERS = 14


def raw_hash_seconds(calls: int = 200_000) -> float:
    data = bytes(97)  # an inner node: prefix and two child hashes
    started = time.perf_counter()
    for _ in range(calls):
        blake3_256(data)
    return (time.perf_counter() - started) / calls


def build_tree(size: int, rng: random.Random) -> tuple[SparseMerkleTree, list[tuple[bytes, bytes]]]:
    items = [
        (
            account_key(rng.randbytes(32)),
            encode(Account(Atomic(rng.randrange(10**15)), Nonce(rng.randrange(100)))),
        )
        for _ in range(size)
    ]
    tree = SparseMerkleTree()
    for start in range(0, size, 50_000):  # in block-sized batches, as the chain builds it
        tree = tree.update(dict(items[start : start + 50_000]))
    return tree, items


def measure_proofs(
    tree: SparseMerkleTree, items: list[tuple[bytes, bytes]], probes: int, rng: random.Random
) -> dict[str, float]:
    chosen = rng.sample(items, probes)
    proofs = [(key, value, tree.prove(key)) for key, value in chosen]
    root = tree.root
    started = time.perf_counter()
    for key, value, proof in proofs:
        if not verify_proof(root, key, value, proof):
            raise AssertionError("a valid proof did not verify")
    verify = (time.perf_counter() - started) / probes
    return {
        "proof_bytes": statistics.fmean(len(encode(p)) for _, _, p in proofs),
        "depth": statistics.fmean(p.depth for _, _, p in proofs),
        "verify_seconds": verify,
    }


def header_at(height: int, prev: bytes, state_root: bytes, commitment: bytes) -> Header:
    return Header(
        version=1,
        height=Height(height),
        prev_hash=Hash32(prev),
        timestamp=1_700_000_000 + height,
        events_root=Hash32(bytes(32)),
        state_root=Hash32(state_root),
        next_checkpoint_quorum=Hash32(commitment),
    )


class Quorum:
    """A 20-key checkpoint quorum that certifies with 14 signers."""

    def __init__(self, rng: random.Random) -> None:
        self.secrets = [bls.secret_key_from_seed(rng.randbytes(32)) for _ in range(CHECKPOINT_QUORUM_SIZE)]
        self.keys = tuple(bytes(bls.public_key(sk)) for sk in self.secrets)
        self.commitment = compute_quorum_commitment(self.keys)
        self.signers = sorted(rng.sample(range(CHECKPOINT_QUORUM_SIZE), SIGNERS))
        self.joint = BlsSecretKey(sum(int(self.secrets[i]) for i in self.signers) % CURVE_ORDER)
        self.bitset = encode_bitset(self.signers, CHECKPOINT_QUORUM_SIZE)

    def certify(self, header: Header) -> CheckpointCertificate:
        block_hash = compute_block_hash(header)
        message = compute_checkpoint_message(CHAIN_ID, header.height, block_hash)
        return CheckpointCertificate(header.height, block_hash, self.bitset, bls.sign(self.joint, message))


def checkpoint_answers(count: int, quorum: Quorum, genesis: Header) -> list[dict[str, Any]]:
    answers = []
    prev = compute_block_hash(genesis)
    for index in range(1, count + 1):
        header = header_at(index * INTERVAL, prev, bytes(32), quorum.commitment)
        answers.append(
            {
                "height": header.height,
                "header": encode(header).hex(),
                "certificate": encode(quorum.certify(header)).hex(),
                "next_quorum": [{"pubkey_bls": key.hex()} for key in quorum.keys],
            }
        )
        prev = compute_block_hash(header)
    return answers


def walk(answers: list[dict[str, Any]], genesis: Header, quorum: Quorum) -> float:
    client = VerifyingClient(Trusted(CHAIN_ID, genesis, quorum.keys, INTERVAL), [RpcSource("http://bench")])
    started = time.perf_counter()
    for answer in answers:
        client.accept(answer, "http://bench")
    elapsed = time.perf_counter() - started
    if client.trusted.height != answers[-1]["height"]:
        raise AssertionError("the walk did not reach the last checkpoint")
    return elapsed


def verify_from_checkpoint(
    tree: SparseMerkleTree, items: list[tuple[bytes, bytes]], rng: random.Random, probes: int
) -> float:
    """Seconds per value: a get_state_proof answer, as JSON text, to a verified value."""
    header = header_at(4, bytes(32), tree.root, compute_quorum_commitment(()))
    source = RpcSource("http://bench")
    client = VerifyingClient(Trusted(CHAIN_ID, header, (), INTERVAL), [source])
    texts = []
    for key, value in rng.sample(items, probes):
        answer = {
            "height": 4, "key": key.hex(), "value": value.hex(), "proof": encode(tree.prove(key)).hex(),
            "header": encode(header).hex(), "links": [], "checkpoint_height": 4, "certificate": None,
        }  # fmt: skip
        texts.append((key, json.dumps(answer)))
    started = time.perf_counter()
    for key, text in texts:
        client.verify_answer(json.loads(text), key, 4, source)
    return (time.perf_counter() - started) / probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--pyecc-checkpoints", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    hash_seconds = raw_hash_seconds()
    print(f"reference: one blake3_256 call of 97 bytes: {hash_seconds * 1e6:.2f} µs")
    print(f"{'keys':>10} {'proof bytes':>12} {'depth':>6} {'verify µs':>10} {'÷ blake3':>9}")
    tree: SparseMerkleTree = SparseMerkleTree()
    items: list[tuple[bytes, bytes]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        tree, items = build_tree(size, rng)
        result = measure_proofs(tree, items, min(args.probes, size), rng)
        print(
            f"{size:>10,} {result['proof_bytes']:>12.0f} {result['depth']:>6.1f} "
            f"{result['verify_seconds'] * 1e6:>10.1f} {result['verify_seconds'] / hash_seconds:>9.1f}"
        )
    per_value = verify_from_checkpoint(tree, items, rng, min(args.probes, len(items)))
    print(
        f"a value verified from a trusted checkpoint ({len(items):,} keys, JSON answer in): "
        f"{per_value * 1e3:.3f} ms (aim < 10 ms: {'met' if per_value < 0.010 else 'missed'})"
    )

    quorum = Quorum(rng)
    genesis = header_at(0, bytes(32), bytes(32), quorum.commitment)
    answers = checkpoint_answers(args.checkpoints, quorum, genesis)
    bls.use_backend("arkworks")
    fast = walk(answers, genesis, quorum)
    bls.use_backend("pyecc")
    try:
        slow = walk(answers[: args.pyecc_checkpoints], genesis, quorum) / args.pyecc_checkpoints
    finally:
        bls.use_backend("arkworks")
    print(
        f"walk of {args.checkpoints:,} checkpoints ({SIGNERS} of {CHECKPOINT_QUORUM_SIZE} signers), "
        f"arkworks: {fast:.2f} s, {fast / args.checkpoints * 1e3:.2f} ms each (aim 1,000 in < 10 s: "
        f"{'met' if fast / args.checkpoints * 1000 < 10 else 'missed'})"
    )
    print(
        f"py-ecc: {slow * 1e3:.0f} ms per checkpoint (over {args.pyecc_checkpoints}); "
        f"py-ecc / arkworks = {slow / (fast / args.checkpoints):.0f}x"
    )


if __name__ == "__main__":
    main()
