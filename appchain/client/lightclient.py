"""The light client over JSON-RPC: it asks nodes, and believes only what it verifies.

No node, no LevelDB, no trio: an HTTP client (the standard library's) and the checks of
:mod:`consensus.light`. It starts from a :class:`Trusted` checkpoint (block 0 built from the
genesis file, or a checkpoint whose hash the operator trusts) and:

1. walks forward checkpoint by checkpoint (``get_checkpoint``, fifty per HTTP request in a
   JSON-RPC batch): each certificate must carry two thirds of the quorum that the previous
   trusted header committed to, and the keys of the next quorum must hash to the new header's
   commitment;
2. asks every source for the value at the same final height (``get_state_proof``) and checks each
   answer's headers (hash links up to a trusted checkpoint) and sparse Merkle proof;
3. keeps the newest trusted checkpoint (and its next quorum's keys) in a file
   (:class:`TrustFile`, one entry per genesis), so the next run starts there instead of at
   genesis.

A source that answers something that does not verify is a liar: :class:`Lied` carries its
answer next to the answers that verified, which is the evidence a user can publish.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appchain.client.http import ServerError, decode_answer, describe, json_kind, post
from appchain.home.safefile import check_target, write_atomically
from consensus.checkpoint import CheckpointCertificate
from consensus.light import LightClient, Untrusted
from genesis.build import create_genesis_state
from genesis.document import Genesis
from state.block import Block, Header, compute_block_hash, compute_events_root
from state.checkpoints import compute_quorum_commitment, get_checkpoint_quorum
from state.encoding import DecodeError, Decoder, decode_json, encode
from state.events import compute_event_hash
from state.namespaces import decode_value, state_key
from state.smt import Proof
from state.view import Overlay

MAX_RESPONSE = 64 * 1024 * 1024
BATCH = 50
"""Checkpoints or blocks asked for in one HTTP request (the node's batch limit)."""
MAX_LINKED = 1_000
"""Most blocks fetched to link a block to a certified checkpoint above it (a checkpoint comes
every ``checkpoint_interval`` blocks, 4 on mainnet and at most
:data:`genesis.document.MAX_CHECKPOINT_INTERVAL`; more happens only when the trusted checkpoint
is far above the block)."""

_header = Decoder(Header)
_block = Decoder(Block)
_certificate = Decoder(CheckpointCertificate)
_proof = Decoder(Proof)


class SourceError(ServerError):
    """A node that cannot be reached or refuses the request (not a lie: nothing was claimed)."""


class Lied(Untrusted):
    """A node's answer that does not verify; ``evidence`` holds it beside what did verify."""

    def __init__(self, url: str, reason: str, evidence: dict[str, Any]) -> None:
        super().__init__(f"{url} lied: {reason}")
        self.url = url
        self.reason = reason
        self.evidence = evidence


class RpcSource:
    """One node's JSON-RPC endpoint (``http://host:port``; ``/json_rpc`` is added)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _post(self, payload: object) -> Any:
        endpoint = self.url if self.url.endswith("/json_rpc") else self.url + "/json_rpc"
        try:
            answer = post(
                endpoint, json.dumps(payload).encode(), timeout=self.timeout, max_answer=MAX_RESPONSE
            )
            reply = decode_answer(answer)
        except ServerError as exc:
            raise SourceError(str(exc)) from None
        if answer.status != 200:
            error = reply.get("error") if isinstance(reply, dict) else None
            said = f": {describe(error.get('message'))}" if isinstance(error, dict) else ""
            raise SourceError(f"{self.url}: HTTP {answer.status}{said}")
        return reply

    @staticmethod
    def _result(reply: object, url: str) -> dict[str, Any]:
        if not isinstance(reply, dict):
            raise SourceError(f"{url}: answered a JSON {json_kind(reply)}, not a JSON-RPC reply")
        error = reply.get("error")
        if isinstance(error, dict):
            message = describe(error.get("message", "error"))
            raise SourceError(f"{url}: it refused: {message} (code {describe(error.get('code'))})")
        if "result" not in reply:
            raise SourceError(f"{url}: a JSON-RPC reply without a result")
        result = reply["result"]
        if not isinstance(result, dict):
            raise SourceError(f"{url}: the JSON-RPC result is a {json_kind(result)}, not an object")
        return result

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = self._post({"jsonrpc": "2.0", "id": 0, "method": method, "params": params or {}})
        return self._result(reply, self.url)

    def batch(self, method: str, params: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The results of several calls of ``method``, in order (any error fails the batch)."""
        calls = [{"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(params)]
        replies = self._post(calls)
        if isinstance(replies, dict) and "error" in replies:  # the whole batch refused
            self._result(replies, self.url)
        if not isinstance(replies, list) or len(replies) != len(calls):
            raise SourceError(f"{self.url}: the batch answer does not match the batch")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        return [self._result(by_id.get(i), self.url) for i in range(len(calls))]


LEGACY_CHECKPOINT_INTERVAL = 4
"""The checkpoint interval of a trust file entry written before the interval was a chain
parameter (issue 22): every chain then checkpointed every 4 blocks."""


@dataclass
class Trusted:
    """A checkpoint header the client trusts, the BLS keys its header committed to, and the
    chain's ``checkpoint_interval``.

    The interval comes from the trusted genesis (:meth:`from_genesis`). Started from a checkpoint
    the user names (:meth:`from_checkpoint`), there is no genesis and it is the node's word
    (``get_info``'s ``checkpoint_interval``): a wrong one cannot make the client trust a header
    the committed keys did not certify, it only changes which heights the client asks for (a
    quorum signs checkpoint heights only, so no certificate exists for any other)."""

    chain_id: str
    header: Header
    next_quorum: tuple[bytes, ...]
    checkpoint_interval: int

    def __post_init__(self) -> None:
        if self.checkpoint_interval < 1:
            raise Untrusted("the checkpoint interval must be at least 1 block")
        if self.header.height % self.checkpoint_interval:
            raise Untrusted("a trusted header must be a checkpoint header")
        if compute_quorum_commitment(self.next_quorum) != self.header.next_checkpoint_quorum:
            raise Untrusted("the next quorum's keys do not match the trusted header's commitment")

    @property
    def height(self) -> int:
        return int(self.header.height)

    @property
    def block_hash(self) -> bytes:
        return compute_block_hash(self.header)

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> Trusted:
        state, pending = create_genesis_state(genesis)
        interval = genesis.params.checkpoint_interval
        quorum = get_checkpoint_quorum(Overlay(state.get), interval)
        keys = () if quorum is None else tuple(bytes(m.bls_key) for m in quorum.members)
        return cls(genesis.chain_id, pending.block.header, keys, interval)

    @classmethod
    def from_checkpoint(cls, chain_id: str, height: int, block_hash: bytes, source: RpcSource) -> Trusted:
        """Trust the checkpoint at ``height`` whose hash the user gives; the node only supplies it."""
        info = source.call("get_info")
        interval = info.get("checkpoint_interval")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise Lied(source.url, "its checkpoint_interval is not a positive integer", info)
        answer = source.call("get_checkpoint", {"height": height})
        header, _certificate, keys = _read_checkpoint(answer, source.url)
        if header.height != height or compute_block_hash(header) != block_hash:
            raise Lied(source.url, f"its checkpoint {height} is not the block {block_hash.hex()}", answer)
        try:
            return cls(chain_id, header, keys, interval)
        except Untrusted as exc:
            raise Lied(source.url, str(exc), answer) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "block_hash": self.block_hash.hex(),
            "header": encode(self.header).hex(),
            "next_quorum": [key.hex() for key in self.next_quorum],
            "checkpoint_interval": self.checkpoint_interval,
        }

    @classmethod
    def from_json(cls, data: object) -> Trusted:
        """An entry of a trust file; ``KeyError``, ``TypeError``, ``ValueError``, ``DecodeError``
        or :class:`Untrusted` if it is not one."""
        if not isinstance(data, dict):
            raise TypeError("an entry is not an object")
        header = _header.decode(bytes.fromhex(data["header"]))
        interval = data.get("checkpoint_interval", LEGACY_CHECKPOINT_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, int):
            raise TypeError("its checkpoint_interval is not an integer")
        next_quorum = tuple(bytes.fromhex(k) for k in data["next_quorum"])
        return cls(str(data["chain_id"]), header, next_quorum, interval)


TRUST_FORMAT = "appchain-light-trust/2"


def genesis_anchor(genesis_hash: bytes) -> str:
    """The trust file key of a chain followed from its genesis file."""
    return f"genesis:{genesis_hash.hex()}"


def checkpoint_anchor(height: int, block_hash: bytes) -> str:
    """The trust file key of a chain followed from a checkpoint the user named."""
    return f"checkpoint:{height}:{block_hash.hex()}"


class TrustFile:
    """The light client's trust file: for each chain it follows, the newest checkpoint it verified.

    Entries are keyed by where the trust started, never by chain id alone (every devnet and
    testnet is ``appchain-devnet``): the hash of the genesis file (:func:`genesis_anchor`), or a
    checkpoint the user named (:func:`checkpoint_anchor`). A client started from a genesis file
    reads only that genesis's entry, so a file kept from another chain of the same name is never
    used to judge this one's nodes (they would all look like liars); the other entries are kept
    as they were when the file is written again. A file of the first format (one checkpoint, no
    genesis) reads as an entry anchored at its own checkpoint.

    The file is the client's own state, so it is replaced on each save, but only where
    :mod:`appchain.home.safefile` allows (a regular file or a new name, never a node home's files)
    and only after it was read as a trust file: a file that is not one is refused, never
    overwritten.
    """

    def __init__(self, path: Path, entries: dict[str, Trusted] | None = None) -> None:
        self.path = path
        self.entries: dict[str, Trusted] = dict(entries or {})

    @classmethod
    def load(cls, path: Path) -> TrustFile:
        check_target(path, force=True)  # before reading: a FIFO would block, a device is no file
        if not path.exists():
            return cls(path)
        try:
            data = decode_json(path.read_bytes())
            if isinstance(data, dict) and data.get("format") == TRUST_FORMAT:
                chains = data["chains"]
                if not isinstance(chains, dict):
                    raise TypeError("its chains are not an object")
                entries = {str(anchor): Trusted.from_json(entry) for anchor, entry in chains.items()}
            else:  # the first format: one trusted checkpoint
                trusted = Trusted.from_json(data)
                entries = {checkpoint_anchor(trusted.height, trusted.block_hash): trusted}
        except (OSError, DecodeError, KeyError, TypeError, ValueError) as exc:
            raise Untrusted(f"{path}: not a trusted checkpoint file ({exc})") from None
        return cls(path, entries)

    def get(self, anchor: str) -> Trusted | None:
        return self.entries.get(anchor)

    def of_chain(self, chain_id: str) -> dict[str, Trusted]:
        """The entries of chains named ``chain_id`` (there may be several), by anchor."""
        return {anchor: t for anchor, t in self.entries.items() if t.chain_id == chain_id}

    def keep(self, anchor: str, trusted: Trusted) -> None:
        self.entries[anchor] = trusted

    def save(self) -> None:
        data = {
            "format": TRUST_FORMAT,
            "chains": {anchor: trusted.to_json() for anchor, trusted in sorted(self.entries.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, (json.dumps(data, indent=1) + "\n").encode(), force=True)


def _hex(answer: dict[str, Any], name: str, url: str, value: object = None) -> bytes:
    """``answer[name]`` (or ``value``, an item of it) as bytes; a :class:`Lied` if not hex."""
    value = answer.get(name) if value is None else value
    try:
        if isinstance(value, str):
            return bytes.fromhex(value)
    except ValueError:
        pass
    raise Lied(url, f"its {name!r} is not hex", answer)


def _read_block(answer: dict[str, Any], height: int, url: str) -> Block:
    """The block in a ``get_block`` answer (its ``blob``), which must be the block at ``height``."""
    try:
        block = _block.decode(_hex(answer, "blob", url))
    except DecodeError as exc:
        raise Lied(url, f"its block {height} does not decode: {exc}", answer) from None
    if block.header.height != height:
        raise Lied(url, f"it answered block {block.header.height} for block {height}", answer)
    return block


def _read_checkpoint(
    answer: dict[str, Any], url: str
) -> tuple[Header, CheckpointCertificate | None, tuple[bytes, ...]]:
    try:
        header = _header.decode(_hex(answer, "header", url))
        raw_certificate = answer.get("certificate")
        certificate = (
            None if raw_certificate is None else _certificate.decode(_hex(answer, "certificate", url))
        )
        members = answer.get("next_quorum")
        if not isinstance(members, list):
            raise Lied(url, "its next quorum is not a list", answer)
        keys = tuple(
            _hex(answer, "next_quorum", url, m.get("pubkey_bls") if isinstance(m, dict) else 0)
            for m in members
        )
    except DecodeError as exc:
        raise Lied(url, str(exc), answer) from None
    return header, certificate, keys


@dataclass
class Proven:
    """A value (``None``: absent) proven at ``height`` by the sources in ``sources``."""

    key: bytes
    height: int
    value: bytes | None
    sources: list[str] = field(default_factory=list)


class VerifyingClient:
    def __init__(self, trusted: Trusted, sources: Sequence[RpcSource]) -> None:
        if not sources:
            raise ValueError("a light client needs at least one node to ask")
        self.trusted = trusted
        self.sources = list(sources)
        self.core = LightClient(trusted.chain_id, trusted.header, trusted.checkpoint_interval)
        self.checkpoints_walked = 0

    # -- walking checkpoints -----------------------------------------------------------------

    def walk_to(self, target: int, source: RpcSource) -> None:
        """Trust every checkpoint up to ``target`` (a checkpoint height) on ``source``'s word,
        each one verified: certificate by the committed quorum, next quorum by its commitment."""
        interval = self.trusted.checkpoint_interval
        while self.trusted.height < target:
            heights = range(
                self.trusted.height + interval,
                min(target, self.trusted.height + interval * BATCH) + 1,
                interval,
            )
            answers = source.batch("get_checkpoint", [{"height": h} for h in heights])
            for answer in answers:
                self.accept(answer, source.url)

    def accept(self, answer: dict[str, Any], url: str) -> None:
        """Trust the next checkpoint from a ``get_checkpoint`` answer, or raise :class:`Lied`."""
        header, certificate, next_keys = _read_checkpoint(answer, url)
        if certificate is None:
            raise Lied(url, f"checkpoint {header.height} came without a certificate", answer)
        try:
            self.core.accept_checkpoint(header, certificate, self.trusted.next_quorum)
            self.trusted = Trusted(self.trusted.chain_id, header, next_keys, self.trusted.checkpoint_interval)
        except Untrusted as exc:
            raise Lied(url, f"checkpoint {header.height}: {exc}", answer) from None
        self.checkpoints_walked += 1

    def final_height(self, source: RpcSource) -> int:
        info = source.call("get_info")
        final = info.get("immutable_height")
        if (
            isinstance(final, bool)
            or not isinstance(final, int)
            or final < 0
            or final % self.trusted.checkpoint_interval
        ):
            raise Lied(source.url, "its final height is not a checkpoint height", info)
        return final

    # -- inclusion ----------------------------------------------------------------------------

    def prove_inclusion(self, source: RpcSource, height: int, event_hash: bytes) -> Block:
        """The block at ``height``, verified to hold the event ``event_hash``; :class:`Lied` if not.

        The block comes from ``source`` (``get_block``'s ``blob``) with the blocks above it up to
        the next certified checkpoint: that checkpoint is walked to (its certificate checked
        against the committed quorum), the blocks' headers must link to it by hash, the block's
        events must hash to its header's ``events_root`` (recomputed here from every event), and
        one of them must be the event. So a node can claim a transaction final only if a quorum
        certified a block that holds it.
        """
        interval = self.trusted.checkpoint_interval
        top = -(-height // interval) * interval
        if top > self.trusted.height:
            self.walk_to(top, source)
        top = min((h for h in self.core.headers if h >= height), default=-1)
        if top < 0:
            raise Untrusted(f"{source.url}: no trusted checkpoint at or above height {height}")
        if top - height > MAX_LINKED:
            raise Untrusted(
                f"{source.url}: block {height} is {top - height} blocks below the trusted checkpoint {top}"
            )
        heights = list(range(height, top + 1))
        blocks = []
        for first in range(0, len(heights), BATCH):
            chunk = heights[first : first + BATCH]
            answers = source.batch("get_block", [{"height": h} for h in chunk])
            blocks += [_read_block(answer, h, source.url) for h, answer in zip(chunk, answers, strict=True)]
        headers = [block.header for block in blocks]
        evidence = {"height": height, "checkpoint": top, "blocks": [encode(b.header).hex() for b in blocks]}
        if compute_block_hash(headers[-1]) != compute_block_hash(self.core.headers[top]):
            raise Lied(source.url, f"its block {top} is not the certified checkpoint {top}", evidence)
        try:
            self.core.accept_linked(headers[:-1])
        except Untrusted as exc:
            raise Lied(source.url, str(exc), evidence) from None
        block = blocks[0]
        if compute_events_root(block.events) != block.header.events_root:
            raise Lied(
                source.url, f"the events of its block {height} do not hash to its events root", evidence
            )
        if all(compute_event_hash(event) != event_hash for event in block.events):
            raise Lied(
                source.url, f"its block {height} does not hold the transaction {event_hash.hex()}", evidence
            )
        return block

    # -- proofs -------------------------------------------------------------------------------

    def query(self, namespace: str, identifier: bytes) -> Proven:
        """The value of ``identifier`` in ``namespace``, proven by every source at one height.

        The height is the lowest final height among the sources (at least the trusted one), so
        each of them can prove it. Raises :class:`Lied` with the evidence when a source's answer
        does not verify, :class:`SourceError` when no source can answer at all.
        """
        key = state_key(namespace, identifier)
        finals = []
        unanswered = []
        for source in self.sources:
            try:
                finals.append(self.final_height(source))
            except SourceError as exc:
                unanswered.append(str(exc))
        if not finals:
            raise SourceError("; ".join(unanswered))
        height = max(min(finals), self.trusted.height)
        answers: list[tuple[RpcSource, dict[str, Any]]] = []
        failures: list[str] = []
        for source in self.sources:
            try:
                answers.append((source, source.call("get_state_proof", {"key": key.hex(), "height": height})))
            except SourceError as exc:
                failures.append(str(exc))
        if not answers:
            raise SourceError(f"no node could prove a value at height {height}: " + "; ".join(failures))
        proven = Proven(key, height, None)
        verified: list[dict[str, Any]] = []
        lies: list[Lied] = []
        for source, answer in answers:
            try:
                value = self.verify_answer(answer, key, height, source)
            except Lied as lie:
                lies.append(lie)
                continue
            if verified and value != proven.value:  # two proofs against one trusted root cannot differ
                raise AssertionError("two verified proofs of one key disagree at one trusted height")
            proven.value = value
            proven.sources.append(source.url)
            verified.append({"url": source.url, "answer": answer})
        if lies:
            first = lies[0]
            evidence = {
                "height": height,
                "key": key.hex(),
                "lied": [{"url": lie.url, "reason": lie.reason, "answer": lie.evidence} for lie in lies],
                "verified": verified,
            }
            raise Lied(first.url, first.reason, evidence)
        if namespace in ("account", "reward", "node", "sns") and proven.value is not None:
            decode_value(namespace, proven.value)  # a proven value is the chain's own encoding
        return proven

    def verify_answer(
        self, answer: dict[str, Any], key: bytes, height: int, source: RpcSource
    ) -> bytes | None:
        """The value a ``get_state_proof`` answer proves, after every check; :class:`Lied` if any fails."""
        url = source.url
        if answer.get("height") != height or answer.get("key") != key.hex():
            raise Lied(url, "it answered for another key or height", answer)
        raw_value = answer.get("value")
        value = None if raw_value is None else _hex(answer, "value", url)
        try:
            header = _header.decode(_hex(answer, "header", url))
            links_raw = answer.get("links")
            if not isinstance(links_raw, list):
                raise Lied(url, "its links are not a list", answer)
            links = [_header.decode(_hex(answer, "links", url, h)) for h in links_raw]
            proof = _proof.decode(_hex(answer, "proof", url))
        except DecodeError as exc:
            raise Lied(url, str(exc), answer) from None
        top = answer.get("checkpoint_height")
        if (
            not isinstance(top, int)
            or isinstance(top, bool)
            or top < height
            or top % self.trusted.checkpoint_interval
        ):
            raise Lied(url, "its checkpoint height is not a checkpoint at or above the height", answer)
        if top not in self.core.headers:
            self.walk_to(top, source)
        if top not in self.core.headers:
            raise Untrusted(
                f"{url}: its checkpoint {top} is below the trusted checkpoint {self.trusted.height}"
            )
        chain = [header, *links]
        if [int(h.height) for h in chain] != list(range(height, top + 1)):
            raise Lied(url, "its headers do not run from the height to the checkpoint", answer)
        trusted_top = self.core.headers[top]
        if compute_block_hash(chain[-1]) != compute_block_hash(trusted_top):
            raise Lied(url, f"its header {top} is not the certified checkpoint {top}", answer)
        try:
            if height not in self.core.headers:
                self.core.accept_linked(chain[:-1])
            elif compute_block_hash(self.core.headers[height]) != compute_block_hash(header):
                raise Untrusted(f"its header {height} is not the trusted header {height}")
            self.core.verify_value(height, key, value, proof)
        except Untrusted as exc:
            raise Lied(url, str(exc), answer) from None
        return value
