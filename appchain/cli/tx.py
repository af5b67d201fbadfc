"""``appchain tx``: build, sign and send a transaction, then wait until the light client proves a
final block holds it (:mod:`appchain.client.wallet`). Everything local is checked first, and
the trust to verify with is chosen before anything is sent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from appchain.cli.arguments import check_tx_arguments, parse_name_hash, read_sender
from appchain.cli.results import EXIT_LIED, ClientError
from appchain.cli.trust import choose_trust
from appchain.client.lightclient import Lied, RpcSource, SourceError, VerifyingClient
from appchain.client.wallet import next_nonce, parse_amount, parse_key, send_and_wait
from appchain.home.home import Home
from genesis.document import CHAIN_ID
from genesis.load import load_genesis
from state import sns
from state.crypto import bls
from state.events import (
    ClaimRewards,
    Contribute,
    RegisterNode,
    RequestUnlock,
    Reservation,
    SnsBuy,
    SnsRenew,
    SnsUpdate,
    Transaction,
    Transfer,
    compute_node_proof_message,
    sign_transaction,
)
from state.types import AccountKey, Atomic, BlsPublicKey, Hash32, NodeKey, Nonce


def _session_value(name: str, session_id: str) -> bytes:
    try:
        raw = bytes.fromhex(session_id)
    except ValueError:
        raw = b""
    if len(raw) != sns.SESSION_ID_SIZE or raw[0] != 0x05:
        raise ClientError("--session-id must be 66 hex digits starting with 05")
    return sns.encrypt_value(sns.normalize_name(name), raw, os.urandom(sns.NONCE_SIZE))


def _build(args: argparse.Namespace, sender: AccountKey, nonce: Nonce, source: RpcSource) -> Transaction:
    kind = args.tx_command
    if kind == "transfer":
        return Transfer(
            sender, nonce, AccountKey(parse_key(args.to, "--to")), Atomic(parse_amount(args.amount))
        )
    if kind == "register":
        node_key, bls_secret = Home(Path(args.node_home)).load_node_keys()
        bls_key = BlsPublicKey(bls.public_key(bls_secret))
        reserved = []
        for spot in args.reserve:
            account, sep, amount = spot.partition("=")
            if not sep:
                raise ClientError(f"--reserve {spot!r}: ACCOUNT=AMOUNT")
            reserved.append(
                Reservation(AccountKey(parse_key(account, "--reserve")), Atomic(parse_amount(amount)))
            )
        return RegisterNode(
            sender=sender,
            nonce=nonce,
            node_key=NodeKey(node_key.public_key),
            bls_key=bls_key,
            bls_pop=bls.prove_possession(bls_secret),
            node_signature=node_key.sign(compute_node_proof_message(node_key.public_key, bls_key)),
            operator_fee_bp=args.fee_bp,
            amount=Atomic(parse_amount(args.amount)),
            reserved=tuple(reserved),
        )
    if kind == "contribute":
        return Contribute(
            sender, nonce, NodeKey(parse_key(args.node, "--node")), Atomic(parse_amount(args.amount))
        )
    if kind == "unlock":
        return RequestUnlock(sender, nonce, NodeKey(parse_key(args.node, "--node")))
    if kind == "claim":
        return ClaimRewards(sender, nonce)
    name_hash = parse_name_hash(args.name)
    if kind == "sns-buy":
        owner = sender if args.owner is None else AccountKey(parse_key(args.owner, "--owner"))
        backup = (
            None if args.backup_owner is None else AccountKey(parse_key(args.backup_owner, "--backup-owner"))
        )
        return SnsBuy(sender, nonce, name_hash, _session_value(args.name, args.session_id), owner, backup)
    if kind == "sns-renew":
        return SnsRenew(sender, nonce, name_hash)
    # sns-update: it names the record's current update id, which the node tells
    entries = source.call("ons_names_to_owners", {"entries": [name_hash.hex()]}).get("entries") or []
    if not entries:
        raise ClientError(f"the name {args.name!r} is not registered (or has expired)")
    return SnsUpdate(
        sender,
        nonce,
        name_hash,
        Hash32(parse_key(str(entries[0].get("update_id")), "the record's update id")),
        encrypted_value=None if args.session_id is None else _session_value(args.name, args.session_id),
        owner=None if args.owner is None else AccountKey(parse_key(args.owner, "--owner")),
        backup_owner=None
        if args.backup_owner is None
        else AccountKey(parse_key(args.backup_owner, "--backup-owner")),
        clear_backup_owner=args.clear_backup_owner,
    )


def cmd_tx(args: argparse.Namespace) -> int:
    """Build, sign, send; unless ``--no-wait``, wait until the light client proves a final block
    holds the transaction. Everything local is checked first, and the trust to verify with is
    chosen (``--genesis`` …) before anything is sent."""
    check_tx_arguments(args)
    key = read_sender(args)
    source = RpcSource(args.rpc)
    unsigned = _build(args, key.public_key, Nonce(1), source)  # the user's input checked first
    trust = None if args.no_wait else choose_trust(args, "tx")
    if trust is not None:
        chain_id = trust.chain_id
    elif args.genesis is not None:
        chain_id = load_genesis(args.genesis).chain_id
        if args.chain_id is not None and args.chain_id != chain_id:
            raise ClientError(f"--chain-id {args.chain_id!r} is not the genesis's chain {chain_id!r}")
    else:
        chain_id = args.chain_id or _node_chain_id(source)
    started = None if trust is None else trust.start(source)
    verifier = None if started is None else VerifyingClient(started, [source])
    nonce = args.nonce if args.nonce is not None else next_nonce(source, key.public_key)
    tx = sign_transaction(chain_id, msgspec.structs.replace(unsigned, nonce=Nonce(nonce)), key)
    try:
        sent = send_and_wait(source, tx, verifier=verifier, timeout=args.timeout, wait=not args.no_wait)
    except Lied as lie:
        print(json.dumps({"evidence": lie.evidence}, indent=1, sort_keys=True))
        print(f"error: {lie}", file=sys.stderr)
        return EXIT_LIED
    finally:  # the checkpoints verified on the way are kept, even when a later step failed
        if (
            trust is not None
            and verifier is not None
            and started is not None
            and verifier.trusted.height > started.height
        ):
            trust.keep(verifier.trusted)
    if trust is not None and verifier is not None:
        trust.keep(verifier.trusted)
    shown: dict[str, Any] = {"tx_hash": sent.tx_hash.hex(), "nonce": nonce}
    if not args.no_wait:
        shown.update(height=sent.height, final_height=sent.final_height, verified=True)
    if args.json:
        print(json.dumps(shown, sort_keys=True))
    elif args.no_wait:
        print(f"transaction {sent.tx_hash.hex()} sent (nonce {nonce})")
    else:
        print(
            f"transaction {sent.tx_hash.hex()} is final: in block {sent.height}, final height "
            f"{sent.final_height} (verified: a certified checkpoint over the block, which holds it)"
        )
    return 0


def _node_chain_id(source: RpcSource) -> str:
    """The chain id the node reports (``--no-wait`` without ``--chain-id`` or ``--genesis``)."""
    chain_id = source.call("get_info").get("chain_id")
    if not isinstance(chain_id, str) or not CHAIN_ID.match(chain_id):
        raise SourceError(f"{source.url}: get_info answered no valid chain id")
    return chain_id
