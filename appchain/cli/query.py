"""``appchain query``: ask nodes for a balance, rewards, a service node or a Session name, and
believe only what the light client verifies (:mod:`appchain.client.lightclient`): a value, or
its absence, proven against a certified state root.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from appchain.cli.arguments import check_chain_id, check_urls, parse_name_hash
from appchain.cli.results import EXIT_LIED
from appchain.cli.trust import choose_trust
from appchain.client.lightclient import Lied, Proven, RpcSource, VerifyingClient
from appchain.client.wallet import format_amount, parse_key
from state import sns
from state.namespaces import decode_value
from state.noderecords import NodeStatus

QUERY_NAMESPACES = {"balance": "account", "rewards": "reward", "node": "node", "sns": "sns"}
"""``query``'s kinds and the state namespaces they read."""


def cmd_query(args: argparse.Namespace) -> int:
    check_urls(args.rpc)
    check_chain_id(args.chain_id)
    kind = args.query_command
    namespace = QUERY_NAMESPACES[kind]
    identifier = parse_name_hash(args.target) if kind == "sns" else parse_key(args.target, "the key")
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
