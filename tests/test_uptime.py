"""Uptime proofs, worker tests and the quorum cop's decisions (PROTOCOL.md §3)."""

from __future__ import annotations

import msgspec
import pytest

from consensus.uptime import (
    DEVNET_UPTIME,
    MAINNET_UPTIME,
    ProofBook,
    PulseRecord,
    QuorumCop,
    Reachability,
    Reason,
    UptimeProof,
    compute_test_reasons,
    sign_proof,
)
from genesis.presets import DEVNET
from state.crypto import bls, ed25519
from state.events import NewState
from state.noderecords import NodeStatus, ServiceNode
from state.types import Height, NodeKey

KEY = ed25519.SigningKey(b"\x11" * 32)
BLS_KEY = bls.public_key(bls.secret_key_from_seed(b"\x12" * 32))


def proof(timestamp: int = 1000) -> UptimeProof:
    unsigned = UptimeProof(NodeKey(KEY.public_key), "127.0.0.1", 22020, 22021, (1, 0, 0), timestamp, BLS_KEY)
    return sign_proof(unsigned, KEY)


def test_mainnet_window() -> None:
    assert (
        MAINNET_UPTIME.interval,
        MAINNET_UPTIME.validity,
        MAINNET_UPTIME.max_skew,
        MAINNET_UPTIME.min_gap,
    ) == (3600, 7500, 300, 1800)


def test_proof_acceptance_rules() -> None:
    book = ProofBook(MAINNET_UPTIME)
    assert not book.on_proof(proof(), 1000, None)  # not a registered node
    assert not book.on_proof(proof(), 1000, bytes(48))  # another BLS key
    assert not book.on_proof(proof(1000), 1000 + 301, BLS_KEY)  # timestamp too far off
    assert not book.on_proof(msgspec.structs.replace(proof(), p2p_port=1), 1000, BLS_KEY)  # bad signature
    assert book.on_proof(proof(1000), 1000, BLS_KEY)
    assert not book.on_proof(proof(1500), 1500, BLS_KEY)  # within 30 min of the previous: ignored
    assert book.is_fresh(KEY.public_key, 1000 + 7500)
    assert not book.is_fresh(KEY.public_key, 1000 + 7501)
    assert book.on_proof(proof(2900), 2900, BLS_KEY)
    assert book.is_fresh(KEY.public_key, 2900 + 7500)


def test_pulse_participation() -> None:
    record = PulseRecord()
    me = KEY.public_key
    for took_part in [True, False, False, False, False, True, True, True]:
        record.note_round((me,), 1 if took_part else 0, height=1, round_=0)
    assert not record.fails(me)  # 4 misses of 8: still passing
    record.note_round((me,), 0, height=1, round_=0)  # the oldest (a pass) leaves the window: 5 misses
    assert record.fails(me)
    record.forget(me)  # recommissioned: a new record
    assert not record.fails(me) and me not in record.duties
    record.note_round((me,), 0, height=1, round_=0)
    assert [duty.took_part for duty in record.of(me)] == [False]


def test_reason_bits() -> None:
    assert (
        compute_test_reasons(proof_fresh=True, reachable=True, storage_reachable=True, pulse_fails=False) == 0
    )
    bits = compute_test_reasons(proof_fresh=False, reachable=False, storage_reachable=True, pulse_fails=True)
    assert bits == Reason.UPTIME_PROOF | Reason.UNREACHABLE | Reason.PULSE


def test_pulse_participation_is_not_judged_for_a_decommissioned_node() -> None:
    """It sits in no Pulse quorum, so its record cannot improve: judging it would bar recommission."""
    fresh = dict(proof_fresh=True, reachable=True, storage_reachable=True, pulse_fails=True)
    assert compute_test_reasons(**fresh, active=False) == 0
    assert compute_test_reasons(**fresh, active=True) == Reason.PULSE


def test_a_worker_fails_reachability_only_once_unreachable_past_the_threshold() -> None:
    seen = Reachability(DEVNET_UPTIME)
    threshold = DEVNET_UPTIME.validity - DEVNET_UPTIME.interval
    assert seen.threshold == threshold == 14
    assert seen.observe(b"w", False, 100.0)  # a restart or a dropped connection: not yet a failure
    assert seen.observe(b"w", False, 100.0 + threshold)
    assert not seen.observe(b"w", False, 100.0 + threshold + 0.5)
    assert seen.observe(b"w", True, 120.0)  # back: the run of failures is over
    assert seen.observe(b"w", False, 121.0)  # a new run starts its own clock
    assert not seen.observe(b"w", False, 121.0 + threshold + 1)
    assert seen.observe(b"other", False, 200.0)  # each worker has its own clock


def node(
    status: int,
    *,
    activation: int = 0,
    active_since: int = 0,
    credit: int = 60,
    down_at: int = -1,
    down_credit: int = 0,
) -> ServiceNode:
    return ServiceNode(
        operator=KEY.public_key,
        bls_key=BLS_KEY,
        bls_pop=bytes(96),
        node_signature=bytes(64),
        operator_fee_bp=0,  # type: ignore[arg-type]
        contributions=(),
        reserved=(),
        registration_height=Height(0),
        registration_index=0,
        status=status,
        activation_height=activation,
        active_since=active_since,
        recommission_credit=credit,
        decommission_height=down_at,
        decommission_credit=down_credit,
    )


@pytest.fixture
def cop() -> QuorumCop:
    return QuorumCop(DEVNET_UPTIME)


def test_grace_period_for_new_nodes(cop: QuorumCop) -> None:
    fresh = node(NodeStatus.ACTIVE, activation=100, active_since=100)
    assert cop.decide(b"n", fresh, 100 + DEVNET_UPTIME.grace - 1, Reason.UPTIME_PROOF, DEVNET) is None
    assert (
        cop.decide(b"n", fresh, 100 + DEVNET_UPTIME.grace, Reason.UPTIME_PROOF, DEVNET)
        == NewState.DECOMMISSION
    )


def test_failing_active_node_is_decommissioned_with_credit(cop: QuorumCop) -> None:
    assert cop.decide(b"n", node(NodeStatus.ACTIVE), 50, 0, DEVNET) is None
    assert cop.decide(b"n", node(NodeStatus.ACTIVE), 51, Reason.UNREACHABLE, DEVNET) == NewState.DECOMMISSION


def test_low_credit_needs_two_failures_to_deregister(cop: QuorumCop) -> None:
    poor = node(NodeStatus.ACTIVE, credit=0, active_since=40)
    assert cop.decide(b"n", poor, 50, Reason.UNREACHABLE, DEVNET) is None  # one missed test
    assert cop.decide(b"n", poor, 51, Reason.UNREACHABLE, DEVNET) == NewState.DEREGISTER


def test_recommission_needs_a_retest(cop: QuorumCop) -> None:
    down = node(NodeStatus.DECOMMISSIONED, down_at=50, down_credit=60)
    assert cop.decide(b"n", down, 60, Reason.UNREACHABLE, DEVNET) is None  # still failing, credit left
    assert cop.decide(b"n", down, 61, 0, DEVNET) is None  # first pass
    assert cop.decide(b"n", down, 62, 0, DEVNET) == NewState.RECOMMISSION  # passed twice


def test_deregister_when_the_credit_runs_out(cop: QuorumCop) -> None:
    down = node(NodeStatus.DECOMMISSIONED, down_at=50, down_credit=60)
    assert cop.decide(b"n", down, 110, Reason.UNREACHABLE, DEVNET) is None  # credit 0: not below zero
    assert cop.decide(b"n", down, 111, Reason.UNREACHABLE, DEVNET) == NewState.DEREGISTER
