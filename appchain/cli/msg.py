"""``appchain msg``: store, retrieve and delete Session messages in the swarms, directly or
through an onion request (:mod:`appchain.client.messages`).
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

from appchain.cli.arguments import check_msg_arguments, read_sender
from appchain.cli.results import ClientError
from appchain.client.http import describe, json_kind
from appchain.client.messages import SessionAccount, StorageClient, read_messages


def cmd_msg(args: argparse.Namespace) -> int:
    check_msg_arguments(args)
    account = SessionAccount(read_sender(args))
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
