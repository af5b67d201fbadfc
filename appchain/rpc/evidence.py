"""The equivocation evidence this node caught and recorded: ``get_evidence`` (*added*: oxend has
no such method).

Each record holds the two validly signed messages of one quorum member for one slot, its blob
(what :func:`consensus.evidence.verify_evidence` checks), and each message's fields and the
digest its signature covers, so anyone can check it without this node.
"""

from __future__ import annotations

from typing import Any

from appchain.rpc.jsonrpc import Height, Params, RpcError, Text
from appchain.rpc.proofs import blob
from appchain.rpc.served import PublicNode
from consensus.evidence import Evidence, compute_signed_digest, decode_evidence
from consensus.messages import CheckpointVote, Message, VoteMessage
from consensus.pulse import PulseMessage, Stage

MAX_EVIDENCE = 100
"""Most evidence records in one answer (each holds two whole messages, block templates too)."""


def _signer_param(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        signer = bytes.fromhex(text)
    except ValueError:
        signer = b""
    if len(signer) != 32:
        raise RpcError(-32602, "signer must be a 32-byte node key in hex")
    return signer


def _message_fields(message: Message) -> dict[str, Any]:
    """A signed consensus message's fields, bytes in hex."""
    if isinstance(message, PulseMessage):
        return {
            "parent": message.parent.hex(),
            "height": message.height,
            "round": message.round,
            "sender": message.sender,
            "stage": Stage(message.kind).name.lower(),
            "payload": message.payload.hex(),
            "signature": message.signature.hex(),
        }
    if isinstance(message, CheckpointVote):
        return {
            "height": message.height,
            "block_hash": message.block_hash.hex(),
            "member": message.member,
            "signature": message.signature.hex(),
        }
    assert isinstance(message, VoteMessage)  # decode_evidence admits no other type
    return {
        "quorum_height": message.quorum_height,
        "worker_index": message.worker_index,
        "new_state": message.new_state,
        "validator_index": message.vote.validator_index,
        "reasons": message.vote.reasons,
        "signature": message.vote.signature.hex(),
    }


def _evidence_entry(evidence: Evidence) -> dict[str, Any]:
    """A record as ``get_evidence`` lists it: its blob (what :func:`verify_evidence` checks), its
    slot and signer, and each message as hex, with the digest its signature covers and its fields."""
    messages = decode_evidence(evidence)  # the store refuses a malformed record
    return {
        "kind": evidence.kind.value,
        "chain_id": evidence.chain_id,
        "height": evidence.height,
        "round": evidence.round,
        "stage": evidence.stage,
        "signer": bytes(evidence.signer).hex(),
        "signer_bls": None if evidence.signer_bls is None else bytes(evidence.signer_bls).hex(),
        "blob": blob(evidence),
        **{
            name: {
                "blob": blob(message),
                "signed_digest": compute_signed_digest(evidence.chain_id, message).hex(),
                "fields": _message_fields(message),
            }
            for name, message in zip(("first", "second"), messages, strict=True)
        },
    }


class EvidenceParams(Params, frozen=True):
    signer: Text | None = None
    from_height: Height | None = None
    to_height: Height | None = None
    limit: Height | None = None


def get_evidence(node: PublicNode, params: EvidenceParams) -> dict[str, Any]:
    """The equivocation evidence this node recorded (*added*: oxend has no such method), by
    height, round, stage and signer; optionally of one ``signer`` and within
    ``from_height .. to_height``; at most ``limit`` records (1 to 100, default 100)."""
    signer = _signer_param(params.signer)
    start = params.from_height or 0
    end = params.to_height
    if end is not None and end < start:
        raise RpcError(-32602, "to_height must not be below from_height")
    limit = MAX_EVIDENCE if params.limit is None else params.limit
    if not 1 <= limit <= MAX_EVIDENCE:
        raise RpcError(-32602, f"limit must be 1 to {MAX_EVIDENCE}")
    found = []
    for evidence in node.chain.store.iter_evidence(start, end):
        if signer is not None and bytes(evidence.signer) != signer:
            continue
        found.append(_evidence_entry(evidence))
        if len(found) == limit:
            break
    return {"status": "OK", "evidence": found}
