"""Typed errors of the state transition.

``InvalidEvent`` and its subclasses are a verdict on *input*: the event (or block) breaks a
rule, the state is untouched and the caller may report it and carry on. Anything else raised
from inside ``apply_block`` is a bug or corruption and must stop the node.
"""

from __future__ import annotations


class InvalidEvent(Exception):
    """An event that breaks a chain rule; the state is unchanged."""


class InvalidSignature(InvalidEvent):
    """A signature that does not verify."""


class InsufficientFunds(InvalidEvent):
    """An amount larger than the account holds."""


class BadNonce(InvalidEvent):
    """A transaction whose nonce is not the account's nonce + 1."""


class InvalidBlock(InvalidEvent):
    """A block whose header or body breaks a rule; carries the index of a failing event."""

    def __init__(self, message: str, event_index: int | None = None) -> None:
        super().__init__(message)
        self.event_index = event_index
