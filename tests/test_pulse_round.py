"""The Pulse round machine: stages advance on arrival, dropouts, equivocation and garbage."""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from consensus.guard import GuardedSigner, MemorySlotRecord
from consensus.pulse import (
    PRODUCER_INDEX,
    BlockSigned,
    Broadcast,
    PulseMessage,
    PulseRound,
    RoundFailed,
    Stage,
    Timing,
    WakeAt,
    choose_bitset,
    sign_message,
)
from consensus.quorum import PulseQuorum
from state.crypto import ed25519
from state.types import Hash32, NodeKey

KEYS = [ed25519.SigningKey(bytes([i + 1]) * 32) for i in range(12)]
QUORUM = PulseQuorum(NodeKey(KEYS[0].public_key), tuple(NodeKey(k.public_key) for k in KEYS[1:]))
TIMING = Timing(stage_timeout_ms=10_000, round_timeout_ms=60_000)
PARENT = Hash32(b"\x07" * 32)


def finalize(template: Any, random_value: bytes, bitset: int) -> tuple[Any, Hash32]:
    block = (template, random_value, bitset)
    return block, Hash32(hashlib.blake2b(repr(block).encode(), digest_size=32).digest())


class Network:
    """Delivers broadcasts after ``latency``; ``mute(i, message)`` silences a sender."""

    def __init__(
        self, mute: Callable[[int, PulseMessage], bool] = lambda i, m: False, latency: float = 0.05
    ) -> None:
        self.mute = mute
        self.latency = latency
        self.rng = random.Random(5)
        self.machines = [
            PulseRound(
                parent=PARENT,
                height=9,
                round_=0,
                quorum=QUORUM,
                me=GuardedSigner(key, MemorySlotRecord()),
                start=0.0,
                timing=TIMING,
                finalize=finalize,
                random_source=lambda n, i=i: hashlib.blake2b(b"%d" % i, digest_size=n).digest(),
                template=b"template" if i == 0 else None,
            )
            for i, key in enumerate(KEYS)
        ]
        self.queue: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.results: dict[int, Any] = {}
        self.finish_times: dict[int, float] = {}

    def push(self, at: float, target: int, item: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, target, item))

    def handle(self, node: int, actions: list[Any], now: float) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                if self.mute(node, action.message):
                    continue
                for target in range(len(self.machines)):
                    if target != node:
                        self.push(now + self.latency, target, action.message)
            elif isinstance(action, WakeAt):
                self.push(action.time, node, None)
            else:
                self.results[node] = action
                self.finish_times[node] = now

    def run(self) -> dict[int, Any]:
        for node, machine in enumerate(self.machines):
            self.handle(node, machine.on_start(), 0.0)
        while self.queue:
            now, _, target, item = heapq.heappop(self.queue)
            machine = self.machines[target]
            actions = machine.on_time(now) if item is None else machine.on_message(item, now)
            self.handle(target, actions, now)
        return self.results


def silent_from(stage: Stage, nodes: set[int]) -> Callable[[int, PulseMessage], bool]:
    """Nodes (by machine number: 0 is the producer) stop sending from ``stage`` on."""
    return lambda node, message: node in nodes and message.kind >= stage


def honest(dropped: set[int]) -> list[int]:
    return [n for n in range(12) if n not in dropped]


def test_all_honest_finish_fast_with_one_block() -> None:
    net = Network()
    results = net.run()
    assert all(isinstance(results[n], BlockSigned) for n in range(12))
    hashes = {results[n].block_hash for n in range(12)}
    assert len(hashes) == 1
    signed = results[0]
    assert len(signed.signatures) == 11
    for index, signature in signed.signatures:
        assert ed25519.verify(QUORUM.validators[index], signed.block_hash, signature)
    # stages advance on arrival: six message hops, nowhere near one 10 s stage deadline
    assert max(net.finish_times.values()) < 1.0


@pytest.mark.parametrize(
    "stage", [Stage.HANDSHAKE, Stage.BITSET, Stage.COMMIT, Stage.REVEAL, Stage.SIGNATURE]
)
@pytest.mark.parametrize("drops", [1, 2, 3, 4])
def test_up_to_four_dropouts_still_produce_the_block(stage: Stage, drops: int) -> None:
    dropped = set(range(12 - drops, 12))  # validators only; 0 is the producer
    results = Network(silent_from(stage, dropped)).run()
    signed = [results[n] for n in honest(dropped)]
    assert all(isinstance(r, BlockSigned) for r in signed), [
        r for r in signed if not isinstance(r, BlockSigned)
    ]
    assert len({r.block_hash for r in signed}) == 1
    assert all(len(r.signatures) >= 7 for r in signed)


@pytest.mark.parametrize(
    "stage", [Stage.HANDSHAKE, Stage.BITSET, Stage.COMMIT, Stage.REVEAL, Stage.SIGNATURE]
)
@pytest.mark.parametrize("drops", [5, 7])
def test_five_or_more_dropouts_fail_the_round(stage: Stage, drops: int) -> None:
    dropped = set(range(12 - drops, 12))
    results = Network(silent_from(stage, dropped)).run()
    assert all(isinstance(results[n], RoundFailed) for n in honest(dropped))


def test_a_silent_producer_fails_the_round() -> None:
    results = Network(silent_from(Stage.TEMPLATE, {0})).run()
    failures = [results[n] for n in range(1, 12)]
    assert all(isinstance(r, RoundFailed) and r.stage == Stage.TEMPLATE for r in failures)


def test_garbage_and_forged_messages_are_ignored() -> None:
    machine = Network().machines[1]
    machine.on_start()
    good = PulseMessage(PARENT, 9, 0, 2, int(Stage.HANDSHAKE), b"")
    cases = [
        good,  # unsigned
        sign_message(msgspec.structs.replace(good, round=1), KEYS[3]),  # wrong round
        sign_message(msgspec.structs.replace(good, parent=Hash32(bytes(32))), KEYS[3]),  # wrong parent
        sign_message(good, KEYS[5]),  # signed by someone else than validator 2
        sign_message(msgspec.structs.replace(good, sender=40), KEYS[3]),  # no such sender
        sign_message(msgspec.structs.replace(good, kind=Stage.TEMPLATE), KEYS[3]),  # a validator's "template"
        sign_message(msgspec.structs.replace(good, kind=99), KEYS[3]),
    ]
    for message in cases:
        assert machine.on_message(message, 0.01) == []
    assert machine.handshakes == {0}
    assert machine.on_message(sign_message(good, KEYS[3]), 0.01) == []
    assert machine.handshakes == {0, 2}


def test_an_equivocating_producer_never_gets_two_blocks_signed() -> None:
    net = Network()
    original = net.handle

    def handle(node: int, actions: list[Any], now: float) -> None:
        if node != 0:
            original(node, actions, now)
            return
        for action in actions:
            if isinstance(action, Broadcast) and action.message.kind == Stage.TEMPLATE:
                other = msgspec.structs.replace(
                    action.message, payload=action.message.payload[:2] + b"other template"
                )
                from consensus.pulse import sign_message

                other = sign_message(other, KEYS[0])
                for target in range(1, 12):
                    net.push(now + net.latency, target, action.message if target <= 6 else other)
            else:
                original(node, [action], now)

    net.handle = handle  # type: ignore[method-assign]
    results = net.run()
    signed = {r.block_hash for r in results.values() if isinstance(r, BlockSigned) and len(r.signatures) >= 7}
    assert len(signed) <= 1


def test_bitset_choice() -> None:
    full = (1 << 11) - 1
    assert choose_bitset([full, full, full - 1], 7) == full
    assert choose_bitset([0b1111111, 0b1111111, full], 7) == 0b1111111
    assert choose_bitset([0b111111], 7) is None
    assert choose_bitset([0b1111111, 0b11111110], 7) == 0b1111111  # tie: smaller value
    assert PRODUCER_INDEX == 255


def test_a_restarted_validator_never_commits_a_second_random_value() -> None:
    """Crash after committing, restart with a fresh random value: the guard keeps it silent."""
    record = MemorySlotRecord()

    def machine(seed: bytes) -> PulseRound:
        return PulseRound(
            parent=PARENT,
            height=9,
            round_=0,
            quorum=QUORUM,
            me=GuardedSigner(KEYS[1], record),
            start=0.0,
            timing=TIMING,
            finalize=finalize,
            random_source=lambda n: seed[:n],
        )

    first = Network()
    first.machines[1] = machine(b"a" * 16)
    first.run()
    assert isinstance(first.results[1], BlockSigned)
    second = Network()
    second.machines[1] = machine(b"b" * 16)  # same height and round, a new random value
    results = second.run()
    assert isinstance(results[1], RoundFailed) and "double-sign guard" in results[1].reason
    # the others carry on without it: one dropout still makes the block
    assert all(isinstance(results[n], BlockSigned) for n in range(12) if n != 1)
