"""Equivocation evidence (consensus.evidence): caught from what arrives, only when both messages
verify and come from the slot's quorum; checked by verify_evidence; kept by the store once per
signer and slot; served by get_evidence. The node core emits it, and the simulator's
double-signing members are the only ones accused."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import plyvel
import pytest

from appchain.cli.simulate import make_simulation, simulation_genesis
from appchain.home.store import EVIDENCE_PREFIX, BlockStore, StoreCorrupt, evidence_key
from appchain.rpc.methods import handle_body
from consensus.checkpoint import compute_checkpoint_message
from consensus.evidence import (
    ROUNDS_KEPT,
    Evidence,
    EvidenceBook,
    EvidenceKind,
    InvalidEvidence,
    verify_evidence,
)
from consensus.guard import CHECKPOINT, VOTE
from consensus.messages import CheckpointVote, VoteMessage
from consensus.node import Equivocation, NodeCore
from consensus.pulse import PRODUCER_INDEX, PulseMessage, Stage, sign_message
from consensus.quorum import PulseQuorum
from consensus.simulator import Faults, SimConfig, Simulation
from state.checkpoints import CheckpointMember, CheckpointQuorum, get_checkpoint_quorum
from state.crypto import bls, ed25519
from state.encoding import decode, encode
from state.events import Vote, compute_vote_message
from state.obligations import ObligationsQuorum, get_quorum
from state.types import BlsPublicKey, Hash32, NodeKey
from state.view import Overlay
from tests.helpers import served_node

CHAIN = "evidence-test"
PARENT = Hash32(b"\x11" * 32)
HEIGHT = 10
KEYS = [ed25519.SigningKey(bytes([i + 1]) * 32) for i in range(13)]
SECRETS = [bls.secret_key_from_seed(bytes([i + 1]) * 32) for i in range(12)]
PRODUCER, VALIDATORS, OUTSIDER = KEYS[0], KEYS[1:12], KEYS[12]
QUORUM = PulseQuorum(NodeKey(PRODUCER.public_key), tuple(NodeKey(k.public_key) for k in VALIDATORS))
CHECKPOINT_QUORUM = CheckpointQuorum(
    8,
    tuple(
        CheckpointMember(NodeKey(k.public_key), BlsPublicKey(bls.public_key(s)))
        for k, s in zip(KEYS[:12], SECRETS, strict=True)
    ),
)
OBLIGATIONS_QUORUM = ObligationsQuorum(
    tuple(NodeKey(k.public_key) for k in KEYS[:10]), tuple(NodeKey(k.public_key) for k in KEYS[10:12])
)


@pytest.fixture
def book() -> EvidenceBook:
    book = EvidenceBook(CHAIN)
    book.on_round(PARENT, HEIGHT, 0, QUORUM)
    return book


def pulse(
    sender: int,
    kind: Stage,
    payload: bytes,
    *,
    key: ed25519.SigningKey | None = None,
    round_: int = 0,
    parent: Hash32 = PARENT,
) -> PulseMessage:
    signer = key or (PRODUCER if sender == PRODUCER_INDEX else VALIDATORS[sender])
    return sign_message(PulseMessage(parent, HEIGHT, round_, sender, int(kind), payload), signer)


def checkpoint_vote(member: int, block_hash: bytes, *, secret: int | None = None) -> CheckpointVote:
    signing = SECRETS[member] if secret is None else SECRETS[secret]
    message = compute_checkpoint_message(CHAIN, 8, block_hash)
    return CheckpointVote(8, Hash32(block_hash), member, bls.sign(signing, message))


def obligations_vote(
    validator: int, worker: int, new_state: int, reasons: int, *, key: ed25519.SigningKey | None = None
) -> VoteMessage:
    message = compute_vote_message(CHAIN, HEIGHT, worker, new_state, reasons)
    signature = (key or KEYS[validator]).sign(message)
    return VoteMessage(HEIGHT, worker, new_state, Vote(validator, reasons, signature))


# -- catching it --------------------------------------------------------------------------------


def test_two_block_templates_from_the_producer_are_evidence(book: EvidenceBook) -> None:
    first = pulse(PRODUCER_INDEX, Stage.TEMPLATE, b"\x07\xff" + b"block A")
    second = pulse(PRODUCER_INDEX, Stage.TEMPLATE, b"\x07\xff" + b"block B")
    assert book.on_pulse_message(first) is None
    evidence = book.on_pulse_message(second)
    assert evidence is not None
    assert evidence.kind == EvidenceKind.PULSE and evidence.signer == PRODUCER.public_key
    assert (evidence.height, evidence.round, evidence.stage) == (HEIGHT, 0, Stage.TEMPLATE)
    assert (evidence.first, evidence.second, evidence.signer_bls) == (encode(first), encode(second), None)
    verify_evidence(evidence)
    # one record per signer and slot: a third template adds nothing
    assert book.on_pulse_message(pulse(PRODUCER_INDEX, Stage.TEMPLATE, b"\x07\xff" + b"block C")) is None


@pytest.mark.parametrize(
    ("stage", "a", "b"),
    [
        (Stage.HANDSHAKE, b"", b"\x01"),
        (Stage.BITSET, b"\x07\xff", b"\x03\xff"),
        (Stage.COMMIT, b"\x01" * 32, b"\x02" * 32),
        (Stage.REVEAL, b"\x01" * 16, b"\x02" * 16),
        (Stage.SIGNATURE, b"\x01" * 64, b"\x02" * 64),
    ],
)
def test_two_stage_messages_from_a_validator_are_evidence(
    book: EvidenceBook, stage: Stage, a: bytes, b: bytes
) -> None:
    assert book.on_pulse_message(pulse(4, stage, a)) is None
    evidence = book.on_pulse_message(pulse(4, stage, b))
    assert evidence is not None and evidence.signer == VALIDATORS[4].public_key and evidence.stage == stage
    verify_evidence(evidence)


def test_two_checkpoint_votes_are_evidence() -> None:
    book = EvidenceBook(CHAIN)
    assert book.on_checkpoint_vote(checkpoint_vote(3, b"\xaa" * 32), CHECKPOINT_QUORUM) is None
    evidence = book.on_checkpoint_vote(checkpoint_vote(3, b"\xbb" * 32), CHECKPOINT_QUORUM)
    assert evidence is not None and evidence.kind == EvidenceKind.CHECKPOINT_VOTE
    assert (evidence.height, evidence.round, evidence.stage) == (8, 0, CHECKPOINT)
    assert evidence.signer == KEYS[3].public_key and evidence.signer_bls == bls.public_key(SECRETS[3])
    verify_evidence(evidence)


@pytest.mark.parametrize(("new_state", "reasons"), [(1, 1), (0, 3)], ids=["another state", "other reasons"])
def test_two_obligations_votes_are_evidence(new_state: int, reasons: int) -> None:
    book = EvidenceBook(CHAIN)
    assert book.on_obligations_vote(obligations_vote(2, 1, 0, 1), OBLIGATIONS_QUORUM) is None
    evidence = book.on_obligations_vote(obligations_vote(2, 1, new_state, reasons), OBLIGATIONS_QUORUM)
    assert evidence is not None and evidence.kind == EvidenceKind.OBLIGATIONS_VOTE
    assert (evidence.height, evidence.round, evidence.stage) == (HEIGHT, 1, VOTE)
    verify_evidence(evidence)


def test_the_same_message_twice_is_no_evidence(book: EvidenceBook) -> None:
    message = pulse(2, Stage.BITSET, b"\x07\xff")
    vote = checkpoint_vote(1, b"\xaa" * 32)
    ballot = obligations_vote(1, 0, 0, 1)
    for _ in range(3):
        assert book.on_pulse_message(message) is None
        assert book.on_checkpoint_vote(vote, CHECKPOINT_QUORUM) is None
        assert book.on_obligations_vote(ballot, OBLIGATIONS_QUORUM) is None
    # so are two messages of one signer in two slots
    assert book.on_pulse_message(pulse(2, Stage.COMMIT, b"\x01" * 32)) is None


def test_a_forged_second_message_is_no_evidence(book: EvidenceBook) -> None:
    assert book.on_pulse_message(pulse(5, Stage.COMMIT, b"\x01" * 32)) is None
    assert book.on_pulse_message(pulse(5, Stage.COMMIT, b"\x02" * 32, key=OUTSIDER)) is None
    assert book.on_pulse_message(pulse(5, Stage.COMMIT, b"\x03" * 32, key=VALIDATORS[6])) is None
    assert book.on_checkpoint_vote(checkpoint_vote(1, b"\xaa" * 32), CHECKPOINT_QUORUM) is None
    assert book.on_checkpoint_vote(checkpoint_vote(1, b"\xbb" * 32, secret=2), CHECKPOINT_QUORUM) is None
    assert book.on_obligations_vote(obligations_vote(1, 0, 0, 1), OBLIGATIONS_QUORUM) is None
    assert book.on_obligations_vote(obligations_vote(1, 0, 1, 1, key=OUTSIDER), OBLIGATIONS_QUORUM) is None


def test_a_forgery_that_arrives_first_neither_frames_nor_hides(book: EvidenceBook) -> None:
    forged = pulse(5, Stage.COMMIT, b"\x09" * 32, key=OUTSIDER)
    assert book.on_pulse_message(forged) is None
    assert book.on_pulse_message(pulse(5, Stage.COMMIT, b"\x01" * 32)) is None  # replaces the forgery
    evidence = book.on_pulse_message(pulse(5, Stage.COMMIT, b"\x02" * 32))
    assert evidence is not None and evidence.first == encode(pulse(5, Stage.COMMIT, b"\x01" * 32))
    verify_evidence(evidence)
    # two forgeries in a row accuse nobody
    assert book.on_pulse_message(pulse(6, Stage.COMMIT, b"\x01" * 32, key=OUTSIDER)) is None
    assert book.on_pulse_message(pulse(6, Stage.COMMIT, b"\x02" * 32, key=OUTSIDER)) is None
    assert book.on_pulse_message(pulse(6, Stage.COMMIT, b"\x03" * 32)) is None


OUTSIDE_PULSE: list[Callable[[int], PulseMessage]] = [
    lambda i: pulse(11, Stage.COMMIT, bytes([i]) * 32, key=OUTSIDER),  # an index past the validators
    lambda i: pulse(-1, Stage.COMMIT, bytes([i]) * 32, key=VALIDATORS[10]),  # a negative index
    lambda i: pulse(3, Stage.COMMIT, bytes([i]) * 32, round_=1),  # a round this node is not part of
    lambda i: pulse(3, Stage.COMMIT, bytes([i]) * 32, parent=Hash32(b"\x22" * 32)),  # on another parent
    lambda i: pulse(3, Stage.TEMPLATE, bytes([i]) * 32),  # a template from a validator
    lambda i: pulse(PRODUCER_INDEX, Stage.COMMIT, bytes([i]) * 32),  # a commitment from the producer
]


@pytest.mark.parametrize("make", OUTSIDE_PULSE)
def test_pulse_messages_from_outside_the_rounds_quorum_are_no_evidence(
    book: EvidenceBook, make: Callable[[int], PulseMessage]
) -> None:
    assert [book.on_pulse_message(make(1)), book.on_pulse_message(make(2))] == [None, None]


def test_votes_from_outside_the_quorum_are_no_evidence() -> None:
    book = EvidenceBook(CHAIN)
    for quorum in (None, CHECKPOINT_QUORUM):  # unknown quorum; a member index past it
        member = 0 if quorum is None else len(CHECKPOINT_QUORUM.members)
        for block_hash in (b"\xaa" * 32, b"\xbb" * 32):
            vote = msgspec.structs.replace(checkpoint_vote(0, block_hash), member=member)
            assert book.on_checkpoint_vote(vote, quorum) is None
    past_validators = [obligations_vote(10, 0, state, 1, key=KEYS[10]) for state in (0, 1)]
    past_workers = [obligations_vote(1, 2, state, 1) for state in (0, 1)]
    for ballots, quorum in ((past_validators, OBLIGATIONS_QUORUM), (past_workers, OBLIGATIONS_QUORUM)):
        assert [book.on_obligations_vote(b, quorum) for b in ballots] == [None, None]
    assert [book.on_obligations_vote(obligations_vote(1, 0, s, 1), None) for s in (0, 1)] == [None, None]
    assert book.slots == {}


def test_memory_is_bounded_by_rounds_and_heights(book: EvidenceBook) -> None:
    for round_ in range(1, ROUNDS_KEPT + 3):
        book.on_round(PARENT, HEIGHT, round_, QUORUM)
        for stage, payload in ((Stage.BITSET, b"\x07\xff"), (Stage.COMMIT, b"\x01" * 32)):
            for sender in range(len(VALIDATORS)):
                book.on_pulse_message(pulse(sender, stage, payload, round_=round_))
    assert len(book.rounds) == ROUNDS_KEPT
    assert {slot[1] for slot in book.slots} == {r for _, r in book.rounds}
    assert sum(len(signers) for signers in book.slots.values()) == ROUNDS_KEPT * 2 * len(VALIDATORS)
    # a forgotten round's messages are no longer remembered, nor evidence
    assert book.on_pulse_message(pulse(0, Stage.BITSET, b"\x03\xff", round_=1)) is None
    book.on_checkpoint_vote(checkpoint_vote(1, b"\xaa" * 32), CHECKPOINT_QUORUM)
    book.forget_below(HEIGHT)
    assert {slot[0] for slot in book.slots} == {HEIGHT}
    book.forget_below(HEIGHT + 1)
    assert book.slots == {} and book.rounds == OrderedDict() and book.reported == {}


# -- checking a record --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def caught() -> dict[str, Evidence]:
    """One genuine record of each kind."""
    pulse_book = EvidenceBook(CHAIN)
    pulse_book.on_round(PARENT, HEIGHT, 0, QUORUM)
    pulse_book.on_pulse_message(pulse(1, Stage.BITSET, b"\x07\xff"))
    vote_book = EvidenceBook(CHAIN)
    vote_book.on_checkpoint_vote(checkpoint_vote(2, b"\xaa" * 32), CHECKPOINT_QUORUM)
    vote_book.on_obligations_vote(obligations_vote(3, 0, 0, 1), OBLIGATIONS_QUORUM)
    records = {
        "pulse": pulse_book.on_pulse_message(pulse(1, Stage.BITSET, b"\x03\xff")),
        "checkpoint": vote_book.on_checkpoint_vote(checkpoint_vote(2, b"\xbb" * 32), CHECKPOINT_QUORUM),
        "obligations": vote_book.on_obligations_vote(obligations_vote(3, 0, 1, 1), OBLIGATIONS_QUORUM),
    }
    assert all(records.values())
    return records  # type: ignore[return-value]


def _replace(evidence: Evidence, **changes: Any) -> Evidence:
    return msgspec.structs.replace(evidence, **changes)


@pytest.mark.parametrize(
    ("kind", "tamper", "reason"),
    [
        ("pulse", lambda e: _replace(e, second=e.first), "same payload"),
        ("pulse", lambda e: _replace(e, signer=NodeKey(OUTSIDER.public_key)), "does not verify"),
        ("pulse", lambda e: _replace(e, stage=3), "of slot (10, 0, 1), not (10, 0, 3)"),
        ("pulse", lambda e: _replace(e, round=1), "of slot (10, 0, 1), not (10, 1, 1)"),
        ("pulse", lambda e: _replace(e, stage=50), "no signed slot"),
        ("pulse", lambda e: _replace(e, signer_bls=BlsPublicKey(bls.public_key(SECRETS[1]))), "BLS key"),
        ("pulse", lambda e: _replace(e, second=b"\xc1"), "does not decode"),
        (
            "pulse",
            lambda e: _replace(e, second=encode(checkpoint_vote(1, b"\xaa" * 32))),
            "not a PulseMessage",
        ),
        (
            "pulse",
            lambda e: _replace(e, second=encode(pulse(2, Stage.BITSET, b"\x01\xff", key=VALIDATORS[1]))),
            "different quorum positions",
        ),
        (
            "pulse",
            lambda e: _replace(
                e, second=encode(msgspec.structs.replace(decode(e.second, PulseMessage), payload=b"\x01\xff"))
            ),
            "second message's signature",
        ),
        ("checkpoint", lambda e: _replace(e, signer_bls=None), "BLS key"),
        (
            "checkpoint",
            lambda e: _replace(e, signer_bls=BlsPublicKey(bls.public_key(SECRETS[5]))),
            "does not verify",
        ),
        ("checkpoint", lambda e: _replace(e, height=12), "of slot (8, 0, 100), not (12, 0, 100)"),
        ("obligations", lambda e: _replace(e, round=1), "of slot (10, 0, 101), not (10, 1, 101)"),
        ("obligations", lambda e: _replace(e, chain_id="another chain"), "does not verify"),
    ],
)
def test_verify_evidence_refuses_what_proves_nothing(
    caught: dict[str, Evidence], kind: str, tamper: Callable[[Evidence], Evidence], reason: str
) -> None:
    verify_evidence(caught[kind])
    with pytest.raises(InvalidEvidence, match=re.escape(reason)):
        verify_evidence(tamper(caught[kind]))


# -- the node core -----------------------------------------------------------------------------


@pytest.fixture
def core_at_4() -> tuple[NodeCore, Simulation]:
    """Node 0 of a 12-node simulated network, blocks 1..4 applied, no certificate yet."""
    config = SimConfig(nodes=12, blocks=4, seed=9)
    _, start = simulation_genesis(config)
    source = Simulation(config, start)
    source.run()
    target = Simulation(config, start)
    core = target.nodes[0].core
    for height in range(1, 5):
        block = source.nodes[0].ledger.block_at(height)
        core.on_block(block, block.header.timestamp / 1000 + 1.0)  # the core's clock: seconds
    return core, target


def _evidence_in(actions: list[Any]) -> list[Evidence]:
    return [a.evidence for a in actions if isinstance(a, Equivocation)]


def test_the_core_emits_evidence_of_double_votes(core_at_4: tuple[NodeCore, Simulation]) -> None:
    core, sim = core_at_4
    state = core.ledger.state
    view = Overlay(state.get)
    now = state.timestamp / 1000 + 1.0
    keys = {bytes(n.node_key): n for n in sim.nodes}

    checkpoint = get_checkpoint_quorum(view, 4)
    assert checkpoint is not None
    member = next(i for i, m in enumerate(checkpoint.members) if m.node_key != core.node_key)
    signer = keys[bytes(checkpoint.members[member].node_key)]
    votes = [
        CheckpointVote(
            4,
            Hash32(h),
            member,
            bls.sign(signer.bls_secret, compute_checkpoint_message(state.chain_id, 4, h)),
        )
        for h in (bytes(state.block_hash), b"\x01" * 32)
    ]
    assert _evidence_in(core.on_message(votes[0], signer.node_key, now)) == []
    [evidence] = _evidence_in(core.on_message(votes[1], signer.node_key, now))
    assert evidence.signer == signer.node_key and evidence.kind == EvidenceKind.CHECKPOINT_VOTE
    verify_evidence(evidence)

    obligations = get_quorum(view, 4)
    assert obligations is not None
    index = next(i for i, k in enumerate(obligations.validators) if k != core.node_key)
    voter = keys[bytes(obligations.validators[index])]
    ballots = [
        VoteMessage(
            4,
            0,
            new_state,
            Vote(index, 1, voter.key.sign(compute_vote_message(state.chain_id, 4, 0, new_state, 1))),
        )
        for new_state in (0, 1)
    ]
    assert _evidence_in(core.on_message(ballots[0], voter.node_key, now)) == []
    [evidence] = _evidence_in(core.on_message(ballots[1], voter.node_key, now))
    assert evidence.signer == voter.node_key and evidence.kind == EvidenceKind.OBLIGATIONS_VOTE
    verify_evidence(evidence)


def test_the_core_emits_evidence_of_two_stage_messages_in_its_round(
    core_at_4: tuple[NodeCore, Simulation],
) -> None:
    core, sim = core_at_4
    state = core.ledger.state
    round_start = (state.timestamp + state.params.block_time) / 1000
    core._start_round(5, 0, round_start)
    assert core.round is not None and core.round_id == (5, 0)
    quorum = core.round.quorum
    sender = next(i for i, k in enumerate(quorum.validators) if k != core.node_key)
    signer = next(n for n in sim.nodes if n.node_key == quorum.validators[sender])
    bitsets = [
        sign_message(PulseMessage(state.block_hash, 5, 0, sender, int(Stage.BITSET), payload), signer.key)
        for payload in (b"\x07\xff", b"\x03\xff")
    ]
    now = round_start + 0.1
    assert _evidence_in(core.on_message(bitsets[0], signer.node_key, now)) == []
    [evidence] = _evidence_in(core.on_message(bitsets[1], signer.node_key, now))
    assert evidence.signer == signer.node_key and (evidence.height, evidence.round, evidence.stage) == (
        5,
        0,
        1,
    )
    verify_evidence(evidence)


def test_the_simulators_double_signers_alone_are_accused() -> None:
    byzantine = {2: "double-sign", 5: "equivocate", 7: "garbage"}
    simulation = make_simulation(SimConfig(nodes=12, blocks=8, seed=3, faults=Faults(byzantine=byzantine)))
    report = simulation.run()
    assert report["accused"] == [2]
    # the run ends when every honest node has 8 final blocks: a byzantine one may still be
    # waiting for the last certificate
    assert min(h for i, h in enumerate(report["final_heights"]) if i not in byzantine) >= 8
    for _, evidence in simulation.evidence:
        verify_evidence(evidence)
    honest = {index for index, _ in simulation.evidence}
    assert len(honest) >= 9 and not honest & set(byzantine)  # every honest member of the quorum


# -- the store and JSON-RPC ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlockStore]:
    with BlockStore(tmp_path / "db", create=True, sync=False) as opened:
        yield opened


def test_the_store_keeps_one_record_per_signer_and_slot(
    store: BlockStore, caught: dict[str, Evidence]
) -> None:
    records = sorted(caught.values(), key=lambda e: (e.height, e.round, e.stage))
    for evidence in records:
        assert store.put_evidence(evidence) is True
    again = _replace(caught["pulse"], second=encode(pulse(1, Stage.BITSET, b"\x01\xff")))
    assert store.put_evidence(again) is False
    assert list(store.iter_evidence()) == [caught["checkpoint"], caught["pulse"], caught["obligations"]]
    assert list(store.iter_evidence(9, 10)) == [caught["pulse"], caught["obligations"]]
    assert list(store.iter_evidence(0, 8)) == [caught["checkpoint"]]
    assert list(store.iter_evidence(11)) == [] and list(store.iter_evidence(2**70, 2**80)) == []
    assert list(store.iter_evidence(0, 2**70)) == list(store.iter_evidence())


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc1",
        encode(
            msgspec.structs.replace(
                Evidence(CHAIN, 10, 0, 1, NodeKey(bytes(32)), None, b"", b""), first=b"\x90"
            )
        ),
    ],
    ids=["undecodable", "malformed messages"],
)
def test_a_corrupt_evidence_record_stops_the_read(
    tmp_path: Path, caught: dict[str, Evidence], raw: bytes
) -> None:
    with BlockStore(tmp_path / "db", create=True) as store:
        store.put_evidence(caught["pulse"])
    db = plyvel.DB(str(tmp_path / "db"))
    db.put(evidence_key(caught["pulse"]), raw)
    db.close()
    with BlockStore(tmp_path / "db") as store, pytest.raises(StoreCorrupt, match="is corrupt"):
        list(store.iter_evidence())
    assert evidence_key(caught["pulse"]).startswith(EVIDENCE_PREFIX)


def _call(store: BlockStore, **params: Any) -> dict[str, Any]:
    node = served_node(chain=SimpleNamespace(store=store))
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "get_evidence", "params": params}).encode()
    answer: dict[str, Any] = json.loads(json.dumps(handle_body(node, body)))
    return answer


def test_get_evidence_serves_records_a_client_can_verify(
    store: BlockStore, caught: dict[str, Evidence]
) -> None:
    for evidence in caught.values():
        store.put_evidence(evidence)
    result = _call(store)["result"]
    assert result["status"] == "OK" and len(result["evidence"]) == 3
    for entry in result["evidence"]:
        evidence = decode(bytes.fromhex(entry["blob"]), Evidence)
        verify_evidence(evidence)
        assert entry["kind"] == evidence.kind.value and entry["signer"] == evidence.signer.hex()
        assert (
            entry["first"]["blob"] == evidence.first.hex()
            and entry["second"]["blob"] == evidence.second.hex()
        )
        assert entry["first"]["signed_digest"] != entry["second"]["signed_digest"]
    pulse_entry = next(e for e in result["evidence"] if e["kind"] == "pulse")
    assert pulse_entry["signer_bls"] is None
    assert pulse_entry["first"]["fields"] == {
        "parent": PARENT.hex(),
        "height": HEIGHT,
        "round": 0,
        "sender": 1,
        "stage": "bitset",
        "payload": "07ff",
        "signature": decode(caught["pulse"].first, PulseMessage).signature.hex(),
    }
    vote_entry = next(e for e in result["evidence"] if e["kind"] == "checkpoint_vote")
    assert vote_entry["signer_bls"] == bls.public_key(SECRETS[2]).hex()
    assert vote_entry["second"]["fields"]["block_hash"] == "bb" * 32
    obligations_entry = next(e for e in result["evidence"] if e["kind"] == "obligations_vote")
    assert obligations_entry["second"]["fields"]["new_state"] == 1

    signer = caught["obligations"].signer.hex()
    assert [e["signer"] for e in _call(store, signer=signer)["result"]["evidence"]] == [signer]
    both = caught["pulse"].signer.hex()  # validator 1 of the round is checkpoint member 2
    assert [e["kind"] for e in _call(store, signer=both)["result"]["evidence"]] == [
        "checkpoint_vote",
        "pulse",
    ]
    assert [e["height"] for e in _call(store, from_height=9)["result"]["evidence"]] == [10, 10]
    assert [e["height"] for e in _call(store, to_height=9)["result"]["evidence"]] == [8]
    assert len(_call(store, limit=2)["result"]["evidence"]) == 2
    assert _call(store, signer=OUTSIDER.public_key.hex())["result"]["evidence"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"signer": "zz"},
        {"signer": "ab" * 31},
        {"signer": 7},
        {"from_height": -1},
        {"to_height": "9"},
        {"from_height": 9, "to_height": 8},
        {"limit": 0},
        {"limit": 101},
        {"limit": True},
    ],
)
def test_get_evidence_refuses_bad_params(
    store: BlockStore, caught: dict[str, Evidence], params: dict[str, Any]
) -> None:
    store.put_evidence(caught["pulse"])
    answer = _call(store, **params)
    assert answer["error"]["code"] == -32602 and "result" not in answer
