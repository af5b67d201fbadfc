"""Loading a genesis file: parse, then check.

:func:`load_genesis` (and :func:`parse_genesis_json`, for bytes already read) parses the JSON
with the depth-limited decoder, reads it field by field (:mod:`genesis.parse`), then runs every
genesis event through the state rules on a scratch state (:mod:`genesis.build`, the normal
path), so a genesis that loads is one whose block 0 applies. Every problem is reported at its
JSON path in one :class:`~genesis.document.GenesisError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from genesis.build import genesis_event_checker
from genesis.document import Genesis, GenesisError
from genesis.parse import Checker, Origins, parse_document
from state.crypto import bls
from state.encoding import DecodeError, decode_json
from state.errors import InvalidEvent
from state.events import validate_basic


def parse_genesis_json(text: str | bytes) -> Genesis:
    """Parse and validate a genesis document; raises :class:`GenesisError` listing every problem."""
    try:
        raw = decode_json(text)
    except DecodeError as exc:
        raise GenesisError([f"$: {exc}"]) from None
    check = Checker()
    parsed = parse_document(raw, check)
    if check.problems or parsed is None:
        raise GenesisError(check.problems or ["$: invalid genesis"])
    genesis, origins = parsed
    _check_events(genesis, origins, check)
    if check.problems:
        raise GenesisError(check.problems)
    return genesis


def load_genesis(path: str | Path) -> Genesis:
    """The genesis file at ``path``, parsed and checked (:func:`parse_genesis_json`)."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise GenesisError([f"$: cannot read {path}: {exc.strerror}"]) from None
    return parse_genesis_json(text)


def _check_events(genesis: Genesis, origins: Origins, check: Checker) -> None:
    """Run every genesis event through the state rules, reporting failures at their paths."""
    paths = ["$.reward_pool"] if genesis.reward_pool else []
    for section in ("allocations", "service_nodes", "sns_records"):
        paths += [f"$.{section}[{i}]" for i in origins[section]]
    apply_one: Callable[[Any], None] = genesis_event_checker(genesis)
    # The nodes' proofs of possession as one batch first: validate_basic then finds the valid
    # ones verified and checks a bad one alone, reporting it at its path.
    bls.verify_possessions([(node.bls_key, node.bls_pop) for node in genesis.service_nodes])
    for path, event in zip(paths, genesis.events(), strict=True):
        try:
            validate_basic(event, genesis.chain_id)
            apply_one(event)
        except InvalidEvent as exc:
            check.fail(path, str(exc))
