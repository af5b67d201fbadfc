"""What a light client checks a node's answers with: ``get_state_proof`` (a value, or its
absence, at a final height, proven against that height's state root, with the headers up to the
next certified checkpoint and its certificate), ``get_checkpoint`` (a certified checkpoint and
the BLS keys of the quorum its header commits to) and ``get_checkpoints`` (oxend's list of them).

Proofs are given at final heights only (-32003 above the final height), and only within the
proof window the chain keeps (-32004 outside it): never a value of another height than the one
asked.
"""

from __future__ import annotations

from typing import Any

from appchain.home.history import OutsideWindow
from appchain.rpc.blocks import header_at
from appchain.rpc.jsonrpc import Height, Params, RpcError, Text
from appchain.rpc.served import PublicNode
from consensus.checkpoint import CheckpointCertificate, decode_bitset
from state.block import compute_block_hash
from state.checkpoints import decode_checkpoint_quorum, is_checkpoint_height
from state.encoding import encode
from state.namespaces import state_key


def blob(record: object) -> str:
    return encode(record).hex()


class ProofParams(Params, frozen=True):
    key: Text
    namespace: Text | None = None
    height: Height | None = None


def _state_key(params: ProofParams) -> bytes:
    """``key`` alone is a full state key (hex); with ``namespace`` it is the 32-byte identifier."""
    try:
        raw = bytes.fromhex(params.key)
    except ValueError:
        raise RpcError(-32602, "key must be hex") from None
    namespace = params.namespace
    if namespace is None:
        if not 0 < len(raw) <= 256:
            raise RpcError(-32602, "a state key is 1 to 256 bytes")
        return raw
    try:
        return state_key(namespace, raw)
    except ValueError as exc:
        raise RpcError(-32602, str(exc)) from None


def _final_height_param(node: PublicNode, height: int | None) -> int:
    final = node.ledger.final_height
    if height is None:
        return final
    if height > final:
        raise RpcError(
            -32003, f"height {height} is not final: proofs are given up to the final height {final}"
        )
    return height


def get_state_proof(node: PublicNode, params: ProofParams) -> dict[str, Any]:
    """A value (or its absence) at a final height, its proof against that height's state root,
    and what makes the header trusted: the headers up to the next certified checkpoint and that
    checkpoint's certificate."""
    key = _state_key(params)
    height = _final_height_param(node, params.height)
    try:
        value, proof = node.chain.history.prove(node.ledger.state, key, height)
    except OutsideWindow as exc:
        raise RpcError(-32004, str(exc)) from None
    header = header_at(node, height)
    certificate = None
    if height > 0:
        certificate = next(node.chain.store.iter_certificates(height), None)
        if certificate is None or certificate.height > node.ledger.final_height:
            raise RpcError(-32003, f"no certified checkpoint at or above height {height} yet")
    top = height if certificate is None else certificate.height
    links = [header_at(node, h) for h in range(height + 1, top + 1)]
    return {
        "status": "OK",
        "height": height,
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "proof": blob(proof),
        "state_root": header.state_root.hex(),
        "header": blob(header),
        "links": [blob(h) for h in links],
        "checkpoint_height": top,
        "certificate": None if certificate is None else blob(certificate),
    }


class CheckpointParams(Params, frozen=True):
    height: Height | None = None


def get_checkpoint(node: PublicNode, params: CheckpointParams) -> dict[str, Any]:
    """A certified checkpoint (default: the final one): its header, certificate and the BLS keys
    of the quorum its header commits to (the one that certifies the next checkpoint)."""
    height = _final_height_param(node, params.height)
    interval = node.ledger.state.params.checkpoint_interval
    if not is_checkpoint_height(height, interval):
        raise RpcError(
            -32602,
            f"height {height} is not a checkpoint height (a multiple of checkpoint_interval {interval})",
        )
    certificate = None if height == 0 else node.chain.store.get_certificate(height)
    if height > 0 and certificate is None:
        raise RpcError(-32001, f"this node holds no certificate for checkpoint {height}")
    header = header_at(node, height)
    raw = node.chain.store.get_checkpoint_quorum(height + interval, interval)
    if raw is None:
        message = f"this node holds no record of the quorum that block {height} chose for the next checkpoint"
        raise RpcError(-32001, message)
    quorum = decode_checkpoint_quorum(raw)
    return {
        "status": "OK",
        "height": height,
        "block_hash": compute_block_hash(header).hex(),
        "header": blob(header),
        "certificate": None if certificate is None else blob(certificate),
        "signers": None if certificate is None else certificate.signers.hex(),
        "next_quorum": [
            {"service_node_pubkey": m.node_key.hex(), "pubkey_bls": m.bls_key.hex()} for m in quorum.members
        ],
        "immutable_height": node.ledger.final_height,
    }


class CheckpointsParams(Params, frozen=True):
    start_height: Height | None = None
    end_height: Height | None = None
    count: Height | None = None


MAX_CHECKPOINTS = 256
"""Most checkpoints one ``get_checkpoints`` answers (oxend's public limit)."""


def get_checkpoints(node: PublicNode, params: CheckpointsParams) -> dict[str, Any]:
    """oxend's ``get_checkpoints``, in its order: without a range the newest first (``count`` of
    them, default 60); with only ``end_height`` descending from it; with ``start_height``
    ascending from it up to ``end_height``. A certificate is one BLS aggregate of its signers:
    ``signatures`` lists each signer (``voter_index``, its index in the quorum) with that
    aggregate, and ``signers`` / ``signature`` (*added*) give the bitset and the aggregate once."""
    count = min(MAX_CHECKPOINTS, 60 if params.count is None else params.count)
    store = node.chain.store
    certificates: list[CheckpointCertificate] = []
    if params.start_height is not None:
        for certificate in store.iter_certificates(params.start_height):
            if len(certificates) >= count or (
                params.end_height is not None and certificate.height > params.end_height
            ):
                break
            certificates.append(certificate)
    else:
        top = (
            node.ledger.final_height
            if params.end_height is None
            else min(params.end_height, node.ledger.final_height)
        )
        interval = node.ledger.state.params.checkpoint_interval
        height = top - top % interval
        while height > 0 and len(certificates) < count:
            found = store.get_certificate(height)
            if found is not None:
                certificates.append(found)
            height -= interval
    checkpoints = [_checkpoint_entry(node, certificate) for certificate in certificates]
    answer: dict[str, Any] = {
        "status": "OK",
        "untrusted": False,
        "immutable_height": node.ledger.final_height,
    }
    if checkpoints:
        answer["checkpoints"] = checkpoints
    return answer


def _checkpoint_entry(node: PublicNode, certificate: CheckpointCertificate) -> dict[str, Any]:
    interval = node.ledger.state.params.checkpoint_interval
    raw = node.chain.store.get_checkpoint_quorum(certificate.height, interval)
    size = len(decode_checkpoint_quorum(raw).members) if raw is not None else len(certificate.signers) * 8
    aggregate = certificate.signature.hex()
    return {
        "version": 1,
        "type": "ServiceNode",
        "height": certificate.height,
        "block_hash": certificate.block_hash.hex(),
        "signatures": [
            {"voter_index": index, "signature": aggregate}
            for index in decode_bitset(certificate.signers, size)
        ],
        "prev_height": max(certificate.height - interval, 0),
        "signers": certificate.signers.hex(),
        "signature": aggregate,
    }
