"""Canonical encoding: stable bytes, strict decoding."""

from __future__ import annotations

import msgspec
import pytest

from state.block import Block, Header
from state.encoding import DecodeError, Decoder, decode, encode
from state.events import Event, Transfer
from state.types import AccountKey, Atomic, Hash32, Height, Nonce

ALICE = AccountKey(b"\x01" * 32)
BOB = AccountKey(b"\x02" * 32)


def test_transfer_encoding_is_pinned() -> None:
    """The wire/disk/hash format of an event: a change here is a hard fork."""
    tx = Transfer(ALICE, Nonce(1), BOB, Atomic(5))
    assert encode(tx).hex() == (
        "96a87472616e73666572c420" + "01" * 32 + "01c420" + "02" * 32 + "05c440" + "00" * 64
    )


def test_round_trip_through_the_event_union() -> None:
    tx = Transfer(ALICE, Nonce(1), BOB, Atomic(5))
    assert decode(encode(tx), Event) == tx  # type: ignore[arg-type]
    header = Header(1, Height(3), Hash32(bytes(32)), 7, Hash32(b"\x01" * 32), Hash32(b"\x02" * 32))
    block = Block(header, (tx,))
    assert Decoder(Block).decode(encode(block)) == block


@pytest.mark.parametrize(
    "raw",
    [
        encode(["transfer", b"\x01" * 31, 1, b"\x02" * 32, 5, b"\x00" * 64]),  # short key
        encode(["transfer", b"\x01" * 32, -1, b"\x02" * 32, 5, b"\x00" * 64]),  # negative nonce
        encode(["mint", b"\x01" * 32, 5]),  # unknown tag
        encode(["transfer", b"\x01" * 32, 1, b"\x02" * 32, 5, b"\x00" * 64, "extra"]),
        b"\xc1",
        b"",
    ],
)
def test_strict_decoding(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(raw, Event)  # type: ignore[arg-type]


def test_maps_are_encoded_in_sorted_order() -> None:
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})


def test_structs_are_frozen() -> None:
    tx = Transfer(ALICE, Nonce(1), BOB, Atomic(5))
    with pytest.raises(AttributeError):
        tx.amount = Atomic(6)  # type: ignore[misc]
    assert msgspec.structs.replace(tx, amount=Atomic(6)).amount == 6
