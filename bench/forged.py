"""What a forged transaction costs the node that refuses it, against one raw Ed25519 verify.

A transaction whose sender signature does not verify is refused at that check, which comes
before any other (:func:`state.events.validate_basic`), so a flood of forgeries costs about one
signature check each. For a forged transfer and a forged registration (a valid node-key proof and
BLS proof of possession, taken from a real registration, under a bad sender signature), this
prints the time of one refusal on each door and its ratio to one raw ``ed25519.verify`` measured
in the same run:

- JSON-RPC: ``send_transaction``'s hex decoded, then :meth:`Mempool.add` raising;
- p2p: the frame decoded (:func:`consensus.messages.decode_message`), then the same.

For reference it prints what the registration's node-key checks cost (the work the order skips:
before it, a forged registration cost them too). Aim: every ratio under 1.5.
Run: ``python -m bench.forged [--count 2000]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from appchain.cli.devchain import derive_devchain_node
from appchain.home.genesis_files import write_devnet
from appchain.rpc.jsonrpc import decode_transaction_hex
from consensus.mempool import Mempool
from consensus.messages import TxMessage, decode_message
from genesis.build import create_genesis_state
from genesis.devnet import load_dev_accounts
from genesis.load import load_genesis
from state.crypto import bls, ed25519
from state.encoding import encode
from state.errors import InvalidSignature
from state.events import (
    RegisterNode,
    Transaction,
    Transfer,
    compute_node_proof_message,
    compute_signing_message,
    sign_transaction,
    validate_node_keys,
)
from state.state import State
from state.types import AccountKey, Atomic, Ed25519Signature, NodeKey, Nonce


def per_call(function: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - started) / count


def forged(tx: Transaction) -> Transaction:
    """``tx`` with its signature's last byte flipped."""
    signature = bytearray(tx.signature)
    signature[-1] ^= 1
    return msgspec.structs.replace(tx, signature=Ed25519Signature(bytes(signature)))


def transactions(chain_id: str, key: ed25519.SigningKey) -> dict[str, Transaction]:
    node, bls_secret = derive_devchain_node(0)
    bls_key = bls.public_key(bls_secret)
    registration = RegisterNode(
        sender=key.public_key,
        nonce=Nonce(1),
        node_key=NodeKey(node.public_key),
        bls_key=bls_key,
        bls_pop=bls.prove_possession(bls_secret),
        node_signature=node.sign(compute_node_proof_message(node.public_key, bls_key)),
        operator_fee_bp=0,
        amount=Atomic(1),
    )
    transfer = Transfer(key.public_key, Nonce(1), AccountKey(b"\x42" * 32), Atomic(1))
    return {
        "transfer": forged(sign_transaction(chain_id, transfer, key)),
        "registration": forged(sign_transaction(chain_id, registration, key)),
    }


def refusal(pool: Mempool, state: State, decode: Callable[[], Transaction]) -> Callable[[], None]:
    def refuse() -> None:
        try:
            pool.add(decode(), state, 0.0)
        except InvalidSignature:
            return
        raise AssertionError("a forged transaction was accepted")

    return refuse


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "genesis.json"
        write_devnet(path, nodes=4, seed="bench-forged", users=2)
        genesis = load_genesis(path)
        key = load_dev_accounts(Path(folder) / "keys" / "accounts.json")[0]
    state, _ = create_genesis_state(genesis)
    pool = Mempool(genesis.chain_id)
    txs = transactions(genesis.chain_id, key)
    sample = txs["transfer"]
    message = compute_signing_message(genesis.chain_id, sample)
    raw = per_call(lambda: ed25519.verify(sample.sender, message, sample.signature), args.count)
    print(f"raw ed25519.verify: {raw * 1e6:7.1f} µs")
    for name, tx in txs.items():
        hex_text, frame = encode(tx).hex(), encode(TxMessage(tx))
        doors = {
            "JSON-RPC": lambda text=hex_text: decode_transaction_hex(text, "tx_as_hex"),
            "p2p": lambda data=frame: decode_message(data).tx,  # type: ignore[union-attr]
        }
        for door, decode in doors.items():
            seconds = per_call(refusal(pool, state, decode), args.count)
            ratio = seconds / raw
            print(f"forged {name:<13} by {door:<8}: {seconds * 1e6:7.1f} µs  ({ratio:.2f}x a raw verify)")
        assert len(pool) == 0
    registration = txs["registration"]
    assert isinstance(registration, RegisterNode)
    keys = (registration.node_key, registration.bls_key, registration.bls_pop, registration.node_signature)
    skipped = per_call(lambda: validate_node_keys(*keys), max(1, args.count // 20))
    ratio = skipped / raw
    print(f"a registration's node-key checks (a forgery skips them): {skipped * 1e6:7.1f} µs ({ratio:.0f}x)")


if __name__ == "__main__":
    main()
