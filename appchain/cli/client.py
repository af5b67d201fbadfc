"""The client commands of ``appchain``: ``keys``, ``tx`` and ``query``.

They need no node home and no database: ``tx`` talks to a node's public JSON-RPC, and ``query``
is the light client (:mod:`appchain.client.lightclient`), which believes only what it verifies.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519

from appchain.client.http import ServerError, describe, json_kind, parse_url
from appchain.client.lightclient import (
    Lied,
    Proven,
    RpcSource,
    SourceError,
    Trusted,
    TrustFile,
    VerifyingClient,
    checkpoint_anchor,
    genesis_anchor,
)
from appchain.client.messages import SessionAccount, StorageClient, read_messages
from appchain.client.wallet import (
    WalletError,
    format_amount,
    next_nonce,
    parse_amount,
    parse_key,
    send_and_wait,
)
from appchain.home.home import Home, default_home
from appchain.home.keyfile import KeyFileError, read_seed, write_seed
from appchain.home.safefile import UnsafeTarget
from appchain.messaging.rpc import TTL_MAXIMUM, TTL_MAXIMUM_PRIVATE, TTL_MINIMUM
from appchain.messaging.store import is_public_inbox
from consensus.light import Untrusted
from genesis.document import CHAIN_ID, Genesis
from genesis.load import load_genesis
from state import sns
from state.crypto import bls, ed25519
from state.events import (
    MAX_FEE_BP,
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
from state.namespaces import decode_value
from state.noderecords import NodeStatus
from state.types import MAX_U64, AccountKey, Atomic, BlsPublicKey, Bytes32, Hash32, NodeKey, Nonce

EXIT_LIED = 6
"""``query``: a node answered something that does not verify; the evidence is printed."""

QUERY_NAMESPACES = {"balance": "account", "rewards": "reward", "node": "node", "sns": "sns"}
"""``query``'s kinds and the state namespaces they read."""


MAX_TIMEOUT = 86_400.0
"""``tx --timeout``: at most a day (finality takes seconds on a devnet, minutes on mainnet)."""


class ClientError(Exception):
    """A user mistake in a client command: one ``error:`` line, exit 1."""


# -- arguments, checked before anything is read or sent -----------------------------------------


def check_integer(value: int | None, flag: str, low: int, high: int) -> None:
    """``value`` (None: not given) within [low, high]: the bounds of the field it fills."""
    if value is not None and not low <= value <= high:
        raise ClientError(f"{flag} {value} must be from {low} to {high}")


def check_seconds(value: float, flag: str, low: float, high: float, *, above_low: bool = False) -> None:
    """A number of seconds within its bounds; NaN and infinities fail (every comparison with NaN is false)."""
    inside = (low < value if above_low else low <= value) and value <= high
    if not inside:
        lowest = f"above {low:g}" if above_low else f"from {low:g}"
        raise ClientError(f"{flag} {value!r} must be a number of seconds {lowest} to {high:g}")


def check_urls(urls: list[str]) -> None:
    for url in urls:
        try:
            parse_url(url)
        except ValueError as exc:
            raise ClientError(f"--rpc {exc}") from None


def check_chain_id(chain_id: str | None) -> None:
    if chain_id is not None and not CHAIN_ID.match(chain_id):
        raise ClientError(
            f"--chain-id {chain_id!r}: 1 to 64 of lowercase letters, digits, '.', '_', '-', "
            "starting with a letter or digit"
        )


def check_tx_arguments(args: argparse.Namespace) -> None:
    """Every ``tx`` argument that needs no file and no node, checked before anything is sent."""
    check_urls([args.rpc])
    check_chain_id(args.chain_id)
    check_seconds(args.timeout, "--timeout", 0.0, MAX_TIMEOUT, above_low=True)
    check_integer(args.nonce, "--nonce", 1, MAX_U64)
    if args.tx_command == "register":
        check_integer(args.fee_bp, "--fee-bp", 0, MAX_FEE_BP)


def check_msg_arguments(args: argparse.Namespace) -> None:
    """Every ``msg`` argument that needs no file and no node: the URL, namespace, TTL."""
    check_urls([args.rpc])
    if args.msg_command in ("store", "retrieve"):
        check_integer(args.namespace, "--namespace", -32768, 32767)
    if args.msg_command == "store":
        longest = TTL_MAXIMUM if is_public_inbox(args.namespace) else TTL_MAXIMUM_PRIVATE
        check_seconds(args.ttl, "--ttl", TTL_MINIMUM / 1000, longest / 1000)


# -- keys ----------------------------------------------------------------------------------------


def cmd_keys_new(args: argparse.Namespace) -> int:
    if args.node:
        home = Home(_home(args))
        home.write_node_keys(os.urandom(32), os.urandom(32))
        return _show_node(home, secret=False, as_json=args.json)
    path = _out(args)
    write_seed(path, os.urandom(32))
    return _show_account(path, secret=False, as_json=args.json)


def cmd_keys_show(args: argparse.Namespace) -> int:
    if args.node:
        return _show_node(Home(_home(args)), secret=args.secret, as_json=args.json)
    if args.file is None:
        raise ClientError("keys show: name the key file (or --node --home DIR)")
    return _show_account(Path(args.file), secret=args.secret, as_json=args.json)


def cmd_keys_import(args: argparse.Namespace) -> int:
    """Seeds come from standard input, never the command line (which other users can read)."""
    lines = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    wanted = 2 if args.node else 1
    seeds = []
    for line in lines:
        try:
            seeds.append(bytes.fromhex(line))
        except ValueError:
            seeds.append(b"")
    if len(seeds) != wanted or any(len(seed) != 32 for seed in seeds):
        what = "two lines: the node key seed, then the BLS seed" if args.node else "one line: the seed"
        raise ClientError(f"keys import: standard input must hold {what} (64 hex digits each)")
    if args.node:
        home = Home(_home(args))
        home.write_node_keys(seeds[0], seeds[1])
        return _show_node(home, secret=False, as_json=args.json)
    path = _out(args)
    write_seed(path, seeds[0])
    return _show_account(path, secret=False, as_json=args.json)


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home) if args.home is not None else default_home()


def _out(args: argparse.Namespace) -> Path:
    if args.out is None:
        raise ClientError("name the key file to write with --out FILE (or --node --home DIR)")
    return Path(args.out)


def _show_account(path: Path, *, secret: bool, as_json: bool) -> int:
    key = ed25519.SigningKey(read_seed(path))
    shown = {"account": key.public_key.hex(), "file": str(path)}
    if secret:
        shown["seed"] = key.seed.hex()
    _emit(shown, as_json)
    return 0


def _show_node(home: Home, *, secret: bool, as_json: bool) -> int:
    node_key, bls_secret = home.load_node_keys()
    shown = {
        "node_key": node_key.public_key.hex(),
        "pubkey_x25519": crypto_sign_ed25519_pk_to_curve25519(node_key.public_key).hex(),
        "pubkey_bls": bls.public_key(bls_secret).hex(),
        "folder": str(home.keys_path),
    }
    if secret:
        shown["node_seed"] = read_seed(home.node_key_path).hex()
        shown["bls_seed"] = read_seed(home.bls_key_path).hex()
    _emit(shown, as_json)
    return 0


def _emit(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(shown, sort_keys=True))
    else:
        for name, value in shown.items():
            print(f"{name}: {value}")


# -- tx ------------------------------------------------------------------------------------------


def _sender(args: argparse.Namespace) -> ed25519.SigningKey:
    return ed25519.SigningKey(read_seed(Path(args.key)))


def _name_hash(name: str) -> Bytes32:
    try:
        return Bytes32(sns.compute_name_hash(sns.normalize_name(name)))
    except sns.InvalidName as exc:
        raise ClientError(str(exc)) from None


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
    name_hash = _name_hash(args.name)
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
    key = _sender(args)
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


# -- query ---------------------------------------------------------------------------------------


@dataclass
class Trust:
    """Where a light client starts: an entry of the trust file, chosen from the arguments.

    ``--genesis`` always wins: its own entry (by the genesis hash), never another chain's of the
    same name; else ``--checkpoint`` (its own entry); else the one entry kept for ``--chain-id``.
    """

    file: TrustFile
    anchor: str
    chain_id: str
    kept: Trusted | None
    genesis: Genesis | None
    checkpoint: tuple[int, bytes] | None

    def start(self, source: RpcSource) -> Trusted:
        """The trusted checkpoint to start from: the kept entry, else the checkpoint the user
        named (the only case that asks a node, ``source``, for it), else block 0 of the genesis."""
        if self.kept is not None:
            return self.kept
        if self.checkpoint is not None:
            return Trusted.from_checkpoint(self.chain_id, *self.checkpoint, source)
        assert self.genesis is not None
        return Trusted.from_genesis(self.genesis)

    def keep(self, trusted: Trusted) -> None:
        """Write ``trusted`` (what the client verified) under this anchor when it is newer than
        what the file holds for it; the file's other entries stay as they are."""
        known = self.file.get(self.anchor)
        if known is None or trusted.height > known.height:
            self.file.keep(self.anchor, trusted)
            self.file.save()


def choose_trust(args: argparse.Namespace, command: str) -> Trust:
    """The :class:`Trust` of ``--genesis``, ``--checkpoint``, ``--chain-id`` and ``--trust-file``,
    from those and the trust file alone (no node is asked)."""
    genesis = None if args.genesis is None else load_genesis(args.genesis)
    if genesis is not None and args.chain_id is not None and args.chain_id != genesis.chain_id:
        raise ClientError(f"--chain-id {args.chain_id!r} is not the genesis's chain {genesis.chain_id!r}")
    chain_id = genesis.chain_id if genesis is not None else args.chain_id
    if chain_id is None:
        hint = " (or send with --no-wait)" if command == "tx" else ""
        raise ClientError(
            f"{command}: give --genesis FILE, or --chain-id ID (with --checkpoint or a kept trust file)"
            f", to verify {'finality' if command == 'tx' else 'the answer'}{hint}"
        )
    checkpoint = None
    if args.checkpoint is not None:
        height_text, sep, hash_text = args.checkpoint.partition(":")
        if not sep or not height_text.isascii() or not height_text.isdigit():
            raise ClientError("--checkpoint must be HEIGHT:HASH")
        check_integer(int(height_text), "--checkpoint's height", 0, MAX_U64)
        checkpoint = (int(height_text), parse_key(hash_text, "the checkpoint hash"))
    path = Path(args.trust_file) if args.trust_file else default_home() / "light" / f"{chain_id}.json"
    trust_file = TrustFile.load(path)
    if genesis is not None:
        anchor = genesis_anchor(genesis.hash)
    elif checkpoint is not None:
        anchor = checkpoint_anchor(*checkpoint)
    else:
        kept = trust_file.of_chain(chain_id)
        if not kept:
            raise ClientError(
                f"no trusted checkpoint kept in {path} for chain {chain_id!r}: "
                "give --genesis FILE or --checkpoint HEIGHT:HASH"
            )
        if len(kept) > 1:
            raise ClientError(
                f"{path} keeps {len(kept)} chains named {chain_id!r}: give --genesis FILE or "
                "--checkpoint HEIGHT:HASH to say which"
            )
        ((anchor, _),) = kept.items()
    return Trust(trust_file, anchor, chain_id, trust_file.get(anchor), genesis, checkpoint)


def cmd_query(args: argparse.Namespace) -> int:
    check_urls(args.rpc)
    check_chain_id(args.chain_id)
    kind = args.query_command
    namespace = QUERY_NAMESPACES[kind]
    identifier = _name_hash(args.target) if kind == "sns" else parse_key(args.target, "the key")
    sources = [RpcSource(url) for url in args.rpc]
    trust = choose_trust(args, "query")
    started = trust.start(sources[0])
    client = VerifyingClient(started, sources)
    try:
        proven = client.query(namespace, identifier)
    except Lied as lie:
        print(json.dumps({"evidence": lie.evidence}, indent=1, sort_keys=True))
        print(f"error: {lie}", file=sys.stderr)
        return EXIT_LIED
    finally:  # what was verified is kept, even when a later answer failed; nothing else is written
        if client.trusted.height > started.height:
            trust.keep(client.trusted)
    trust.keep(client.trusted)
    shown = _describe(kind, args.target, proven)
    if args.json:
        print(json.dumps(shown, sort_keys=True))
    else:
        print(shown["text"])
    return 0


def _describe(kind: str, target: str, proven: Proven) -> dict[str, Any]:
    """What a query prints: the proven facts, and one line saying them."""
    shown: dict[str, Any] = {"height": proven.height, "key": proven.key.hex(), "sources": proven.sources}
    nodes = len(proven.sources)
    where = f"at height {proven.height} (proven by {nodes} node{'s' if nodes > 1 else ''})"
    if proven.value is None:
        shown.update(absent=True, text=f"{kind} {target}: absent (proven) {where}")
        return shown
    namespace = QUERY_NAMESPACES[kind]
    record = decode_value(namespace, proven.value)
    shown["absent"] = False
    if kind == "balance":
        shown.update(balance=record.balance, nonce=record.nonce)
        text = f"balance of {target}: {format_amount(record.balance)} (nonce {record.nonce}) {where}"
    elif kind == "rewards":
        shown.update(accrued=record.accrued, lifetime=record.lifetime)
        accrued, lifetime = format_amount(record.accrued), format_amount(record.lifetime)
        # the reward ledger holds settled rewards; what its nodes earned since they were last
        # settled is added at the claim (PROTOCOL.md §5) and is not in this record
        text = f"rewards of {target}: {accrued} settled to claim, {lifetime} settled in all {where}"
    elif kind == "node":
        staked = sum(c.amount for c in record.contributions)
        status = NodeStatus(record.status).name.lower()
        shown.update(status=status, operator=record.operator.hex(), staked=staked, swarm_id=record.swarm_id)
        operator = record.operator.hex()
        text = f"service node {target}: {status}, {format_amount(staked)} staked, operator {operator} {where}"
    else:
        expired = record.expiry_height <= proven.height
        shown.update(owner=record.owner.hex(), expiry_height=record.expiry_height, expired=expired)
        try:
            session_id = sns.decrypt_value(sns.normalize_name(target), record.encrypted_value).hex()
        except ValueError:
            session_id = None
        shown["session_id"] = session_id
        state = (
            f"expired at height {record.expiry_height}"
            if expired
            else f"expires at height {record.expiry_height}"
        )
        owner = record.owner.hex()
        text = (
            f"name {target}: Session ID {session_id or '(does not decrypt)'}, owner {owner}, {state} {where}"
        )
    shown["text"] = text
    return shown


# -- msg -----------------------------------------------------------------------------------------


def cmd_msg(args: argparse.Namespace) -> int:
    check_msg_arguments(args)
    account = SessionAccount(_sender(args))
    client = StorageClient(args.rpc, onion=args.onion)
    kind = args.msg_command
    if kind == "store":
        data = Path(args.file).read_bytes() if args.file else (args.data or "").encode()
        if not data:
            raise ClientError("msg store: give --data TEXT or --file FILE")
        params = account.store(data, namespace=args.namespace, ttl_ms=round(args.ttl * 1000))
        status, body = client.call(account.session_id, "store", params)
    elif kind == "retrieve":
        status, body = client.call(
            account.session_id,
            "retrieve",
            account.retrieve(namespace=args.namespace, last_hash=args.last_hash),
        )
    else:
        status, body = client.call(account.session_id, "delete", account.delete(args.hash))
    if status != 200:
        raise ClientError(f"msg {kind}: {client.last_url} answered HTTP {status}: {describe(body)}")
    if not isinstance(body, dict):
        raise ClientError(
            f"{client.last_url}: answered a JSON {json_kind(body)}, not the storage server's object"
        )
    messages = read_messages(client.last_url, body) if kind == "retrieve" else []
    shown: dict[str, Any] = {
        "session_id": account.session_id,
        "via": [n.ed25519.hex() for n in client.last_path],
    }
    shown.update(body)
    if args.json:
        print(json.dumps(shown, sort_keys=True))
    elif kind == "store":
        members = body.get("swarm")
        members = members if isinstance(members, dict) else {}
        held = sum(1 for r in members.values() if isinstance(r, dict) and "hash" in r)
        route = (
            f" (onion through {', '.join(n.ed25519.hex()[:12] for n in client.last_path)})"
            if args.onion
            else ""
        )
        where = f"{held} of {len(members)} swarm members"
        print(f"stored {_text(body.get('hash'))} for {account.session_id} on {where}{route}")
    elif kind == "retrieve":
        for digest, timestamp, raw in messages:
            printable = raw.isascii() and raw.decode().isprintable()
            text = raw.decode() if printable else "base64:" + base64.b64encode(raw).decode()
            print(f"{_text(digest)} {timestamp} {text}")
        if body.get("more"):
            print("(more: ask again with --last-hash)")
    else:
        members = body.get("swarm")
        members = members if isinstance(members, dict) else {}
        lists = [r.get("deleted") for r in members.values() if isinstance(r, dict)]
        deleted = {h for found in lists if isinstance(found, list) for h in found if isinstance(h, str)}
        print(f"deleted {sorted(deleted)}")
    return 0


def _text(value: object) -> str:
    """A server's string as it is when it is one short printable line, else described."""
    if isinstance(value, str) and value.isprintable() and len(value) <= 200:
        return value
    return describe(value)


# -- the parsers ---------------------------------------------------------------------------------


def _add_trust_arguments(parser: argparse.ArgumentParser, why: str) -> None:
    """The light client's starting point (:func:`choose_trust`)."""
    parser.add_argument("--genesis", default=None, help=f"start trusting from this genesis file, {why}")
    parser.add_argument("--checkpoint", default=None, help="HEIGHT:HASH of a checkpoint you trust")
    parser.add_argument(
        "--trust-file",
        default=None,
        help="where trusted checkpoints are kept, one per genesis (default: HOME/light/CHAIN.json)",
    )


def add_client_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, show and import account and node keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for action, handler, text in (
        ("new", cmd_keys_new, "create a key (an account key file, or --node keys in a home)"),
        ("show", cmd_keys_show, "show a key's public parts (--secret to print the seed)"),
        ("import", cmd_keys_import, "write a key from a seed read on standard input"),
    ):
        parser = key_commands.add_parser(action, help=text)
        parser.add_argument("--node", action="store_true", help="the node keys of a home (Ed25519 and BLS)")
        parser.add_argument("--home", default=None, help="the node's home (with --node)")
        if action == "show":
            parser.add_argument("file", nargs="?", help="an account key file")
            parser.add_argument("--secret", action="store_true", help="print the secret seed too")
        else:
            parser.add_argument("--out", default=None, help="the account key file to write (mode 0600)")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=handler)

    tx = commands.add_parser(
        "tx", help="build, sign and send a transaction, then wait until it is final (verified)"
    )
    tx_commands = tx.add_subparsers(dest="tx_command", required=True, metavar="KIND")

    def tx_parser(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = tx_commands.add_parser(name, help=text)
        parser.add_argument("--key", required=True, help="the sender's account key file")
        parser.add_argument("--rpc", required=True, help="a node's RPC URL, e.g. http://127.0.0.1:26658")
        parser.add_argument(
            "--chain-id", default=None, help="default: the genesis's (--genesis), else the node's (--no-wait)"
        )
        parser.add_argument("--nonce", type=int, default=None, help="default: the account's next")
        parser.add_argument("--no-wait", action="store_true", help="return once the node accepted it")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for finality")
        _add_trust_arguments(parser, "to verify that a final block holds the transaction")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=cmd_tx)
        return parser

    transfer = tx_parser("transfer", "send SESH to an account")
    transfer.add_argument("--to", required=True)
    transfer.add_argument("--amount", required=True, help="SESH, e.g. 12.5")
    register = tx_parser("register", "register the node of a home and stake into it")
    register.add_argument("--node-home", required=True, help="the home holding the node's keys")
    register.add_argument("--amount", required=True, help="the operator's stake, SESH")
    register.add_argument("--fee-bp", type=int, default=0, help="operator fee, basis points (0-10000)")
    register.add_argument("--reserve", action="append", default=[], help="ACCOUNT=AMOUNT: a spot held open")
    contribute = tx_parser("contribute", "stake into a node that is not yet fully funded")
    contribute.add_argument("--node", required=True, help="the node key")
    contribute.add_argument("--amount", required=True, help="SESH")
    unlock = tx_parser("unlock", "ask for a node's exit (your stake returns after the unlock delay)")
    unlock.add_argument("--node", required=True)
    tx_parser("claim", "move your accrued rewards into your balance")
    buy = tx_parser("sns-buy", "buy a Session name")
    renew = tx_parser("sns-renew", "extend a name by one period")
    update = tx_parser("sns-update", "change a name's Session ID or owners (owner or backup owner)")
    for parser in (buy, renew, update):
        parser.add_argument("--name", required=True)
    buy.add_argument("--session-id", required=True, help="66 hex digits, 05…")
    update.add_argument("--session-id", default=None)
    for parser in (buy, update):
        parser.add_argument("--owner", default=None, help="default: the sender (buy) / unchanged (update)")
        parser.add_argument("--backup-owner", default=None)
    update.add_argument("--clear-backup-owner", action="store_true")

    query = commands.add_parser("query", help="ask nodes for state and verify it (light client)")
    query_commands = query.add_subparsers(dest="query_command", required=True, metavar="WHAT")
    for name, target, text in (
        ("balance", "account", "an account's balance and nonce"),
        ("rewards", "account", "an account's accrued rewards"),
        ("node", "pubkey", "a service node's record"),
        ("sns", "name", "a Session name's owner and Session ID (decrypted here)"),
    ):
        parser = query_commands.add_parser(name, help=text)
        parser.add_argument("target", metavar=target.upper())
        parser.add_argument(
            "--rpc", action="append", required=True, help="a node's RPC URL (repeat: ask several)"
        )
        parser.add_argument("--chain-id", default=None)
        _add_trust_arguments(parser, "to verify the answers")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=cmd_query)

    msg = commands.add_parser("msg", help="store, retrieve and delete Session messages in the swarms")
    msg_commands = msg.add_subparsers(dest="msg_command", required=True, metavar="ACTION")
    for name, text in (
        ("store", "store a message for your account in its swarm"),
        ("retrieve", "read your account's messages"),
        ("delete", "delete messages by hash"),
    ):
        parser = msg_commands.add_parser(name, help=text)
        parser.add_argument("--key", required=True, help="the account's key file (Ed25519 seed)")
        parser.add_argument("--rpc", required=True, help="a node's RPC URL, e.g. http://127.0.0.1:26658")
        parser.add_argument("--onion", action="store_true", help="through three random nodes (onion request)")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(handler=cmd_msg)
        if name == "store":
            parser.add_argument("--data", default=None)
            parser.add_argument("--file", default=None)
            parser.add_argument("--ttl", type=float, default=14 * 86_400.0, help="seconds (default 14 days)")
        if name in ("store", "retrieve"):
            parser.add_argument("--namespace", type=int, default=0)
        if name == "retrieve":
            parser.add_argument("--last-hash", default="")
        if name == "delete":
            parser.add_argument("--hash", action="append", required=True)


ClientErrors: tuple[type[Exception], ...] = (
    ClientError,
    KeyFileError,
    WalletError,
    ServerError,  # SourceError and the message client's errors among them
    Untrusted,
    UnsafeTarget,
)
"""What the client commands raise for a user's mistake or an unreachable or refusing node."""
