"""Uptime proofs and the tests an obligations quorum runs on its workers (PROTOCOL.md §3).

**Uptime proofs** are gossiped, never stored on chain. A proof is signed by the node key and
carries the node's public address and ports, software version, timestamp and BLS key. A
receiver accepts it only if the signature verifies, the node is registered with that BLS key, the
timestamp is within ``max_skew`` of the receiver's clock, and the node's previous accepted proof
is at least ``min_gap`` old (closer ones are ignored). A node's proof is *fresh* for ``validity``
seconds after it was accepted. Mainnet: sent every hour, valid 2 h 5 min, ±5 min skew, 30 min gap.

**Tests** (Oxen ``service_node_quorum_cop.cpp``): each validator of a height's obligations quorum
tests every worker: uptime proof fresh, p2p port reachable, storage endpoint reachable, Pulse
participation (more than 4 failures among the last 8 Pulse duties fails). Each failed test is a
reason bit. :class:`QuorumCop` turns results into the state change to vote for, with Oxen's
lessons (#604, #1633, #1202):

- a node in its first ``grace`` blocks after activation is not tested;
- a node fails the reachability tests only once it has been unreachable for longer than
  ``validity - interval`` (Oxen's ``unreachable_threshold``: a restart or a dropped connection is
  not a failure; :class:`Reachability` keeps when each worker was first seen unreachable);
- Pulse participation is judged only for active nodes: a decommissioned node sits in no Pulse
  quorum, so its record could never improve (Oxen skips participation checks for recommission);
- an active node that fails is decommissioned if its credit allows; with too little credit it is
  deregistered only if it also failed the previous test (never for a single missed test);
- a decommissioned node is recommissioned only after two consecutive passing tests (a retest);
  one that keeps failing is deregistered once its remaining credit is below zero;
- a recommissioned node's Pulse record starts again (Oxen resets the participation histories on
  recommission): the duties it missed before its decommission would otherwise fail its next test
  and decommission it again, and again, until its credit ran out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntFlag
from typing import NamedTuple

import msgspec

from state.crypto import ed25519
from state.encoding import Record, encode
from state.events import NewState
from state.hashing import hash_tagged
from state.noderecords import NodeStatus, ServiceNode
from state.nodes import compute_credit
from state.params import ChainParams
from state.types import BlsPublicKey, Ed25519Signature, NodeKey

PULSE_DUTIES_CHECKED = 8
PULSE_MAX_MISSED = 4


class Reason(IntFlag):
    UPTIME_PROOF = 1
    UNREACHABLE = 2
    STORAGE = 4
    PULSE = 8


class UptimeRules(Record, frozen=True):
    interval: float
    validity: float
    max_skew: float
    min_gap: float
    grace: int
    """Blocks after activation during which a node is not tested."""


MAINNET_UPTIME = UptimeRules(interval=3600, validity=7500, max_skew=300, min_gap=1800, grace=720)
DEVNET_UPTIME = UptimeRules(interval=6, validity=20, max_skew=5, min_gap=3, grace=10)


class UptimeProof(Record, frozen=True, tag="uptime"):
    node_key: NodeKey
    public_ip: str
    p2p_port: int
    storage_port: int
    version: tuple[int, int, int]
    timestamp: int
    bls_key: BlsPublicKey
    signature: Ed25519Signature = Ed25519Signature(bytes(64))


def compute_proof_message(proof: UptimeProof) -> bytes:
    return hash_tagged("uptime proof", encode(msgspec.structs.replace(proof, signature=bytes(64))))


def sign_proof(proof: UptimeProof, key: ed25519.SigningKey) -> UptimeProof:
    return msgspec.structs.replace(proof, signature=key.sign(compute_proof_message(proof)))


@dataclass
class ProofBook:
    """The uptime proofs one node has accepted, by the time it accepted them."""

    rules: UptimeRules
    accepted: dict[bytes, tuple[UptimeProof, float]] = field(default_factory=dict)

    def on_proof(self, proof: UptimeProof, now: float, registered_bls_key: bytes | None) -> bool:
        """Accept ``proof`` (True) or ignore it (False: invalid, unregistered, skewed or too soon)."""
        if registered_bls_key is None or registered_bls_key != proof.bls_key:
            return False
        if abs(proof.timestamp - now) > self.rules.max_skew:
            return False
        previous = self.accepted.get(bytes(proof.node_key))
        if previous is not None and now - previous[1] < self.rules.min_gap:
            return False
        if not ed25519.verify(proof.node_key, compute_proof_message(proof), proof.signature):
            return False
        self.accepted[bytes(proof.node_key)] = (proof, now)
        return True

    def is_fresh(self, node_key: bytes, now: float) -> bool:
        entry = self.accepted.get(bytes(node_key))
        return entry is not None and now - entry[1] <= self.rules.validity


class PulseDuty(NamedTuple):
    """One Pulse duty: a block at ``height``, made in ``round``, whose validators held the node."""

    height: int
    round: int
    took_part: bool


@dataclass
class PulseRecord:
    """Each node's last ``PULSE_DUTIES_CHECKED`` Pulse duties, oldest first (the heights are
    kept for oxend's ``pulse_participation``; only ``took_part`` counts for the test)."""

    duties: dict[bytes, deque[PulseDuty]] = field(default_factory=dict)

    def note_round(
        self, validators: tuple[bytes, ...], participants: int, *, height: int, round_: int
    ) -> None:
        for index, key in enumerate(validators):
            history = self.duties.setdefault(bytes(key), deque(maxlen=PULSE_DUTIES_CHECKED))
            history.append(PulseDuty(height, round_, bool(participants >> index & 1)))

    def of(self, node_key: bytes) -> list[PulseDuty]:
        return list(self.duties.get(bytes(node_key), ()))

    def missed(self, node_key: bytes) -> int:
        return sum(1 for duty in self.duties.get(bytes(node_key), ()) if not duty.took_part)

    def fails(self, node_key: bytes) -> bool:
        return self.missed(node_key) > PULSE_MAX_MISSED

    def forget(self, node_key: bytes) -> None:
        """Start a node's record again (it was recommissioned)."""
        self.duties.pop(bytes(node_key), None)


def compute_test_reasons(
    *, proof_fresh: bool, reachable: bool, storage_reachable: bool, pulse_fails: bool, active: bool = True
) -> int:
    """The failed tests as reason bits; Pulse participation counts only for an ``active`` worker."""
    reasons = 0
    if not proof_fresh:
        reasons |= Reason.UPTIME_PROOF
    if not reachable:
        reasons |= Reason.UNREACHABLE
    if not storage_reachable:
        reasons |= Reason.STORAGE
    if pulse_fails and active:
        reasons |= Reason.PULSE
    return reasons


@dataclass
class Reachability:
    """When this tester first found each worker unreachable, in an unbroken run of failed probes."""

    rules: UptimeRules
    failing_since: dict[bytes, float] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return self.rules.validity - self.rules.interval

    def observe(self, node_key: bytes, reachable: bool, now: float) -> bool:
        """Record one probe; True unless the worker has been unreachable for over the threshold."""
        if reachable:
            self.failing_since.pop(bytes(node_key), None)
            return True
        since = self.failing_since.setdefault(bytes(node_key), now)
        return now - since <= self.threshold


@dataclass
class QuorumCop:
    """One validator's memory of its tests, and the state change each new result calls for."""

    rules: UptimeRules
    last_result: dict[bytes, int] = field(default_factory=dict)

    def decide(
        self, node_key: bytes, node: ServiceNode, height: int, reasons: int, params: ChainParams
    ) -> NewState | None:
        if node.status == NodeStatus.ACTIVE and height < node.activation_height + self.rules.grace:
            return None  # the grace period of a new node
        previous = self.last_result.get(bytes(node_key))
        self.last_result[bytes(node_key)] = reasons
        credit = compute_credit(node, height, params)
        if node.status == NodeStatus.ACTIVE:
            if not reasons:
                return None
            if credit >= params.decommission_min_credit:
                return NewState.DECOMMISSION
            return NewState.DEREGISTER if previous else None  # never for a single missed test
        if node.status == NodeStatus.DECOMMISSIONED:
            if not reasons:
                return NewState.RECOMMISSION if previous == 0 else None  # retest before recommission
            return NewState.DEREGISTER if credit < 0 else None
        return None
