"""BLS12-381 signatures: the IETF ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` ciphersuite.

Public keys are compressed G1 points (48 bytes), signatures compressed G2 points (96 bytes), as
in Ethereum's consensus layer and Session's staking contracts. Aggregation is safe only because
every registered key carries a proof of possession (a signature over the key bytes under the
``POP`` domain), which defeats rogue-key attacks.

Two backends implement the same functions:

- ``pyecc``: py-ecc's ``G2ProofOfPossession``, the slow readable reference;
- ``arkworks``: the same scheme written here on py-arkworks-bls12381's curve operations
  (hash-to-curve, point arithmetic, pairing check), ~100x faster.

The default is ``arkworks``. Tests run both on the same inputs and require identical bytes and
verdicts. Rules both enforce (and that the tests pin, since a first version of such a layer once
accepted the keys ``[pk, -pk]`` with an identity signature):

- a public key must decode, be in the G1 subgroup and not be the identity;
- a signature must decode and be in the G2 subgroup; the identity signature never verifies;
- an aggregate of public keys that sums to the identity never verifies;
- an empty set of signers never verifies.
"""

from __future__ import annotations

import functools
import secrets
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import py_arkworks_bls12381 as ark
from eth_typing import BLSPubkey, BLSSignature

from state.types import BlsPublicKey, BlsSignature


@functools.cache
def _py_ecc() -> Any:
    """py-ecc's ciphersuite, imported on first use: the import alone costs ~0.3 s, which every
    command that never touches a BLS secret (``status``, ``query``…) would otherwise pay.

    Importing py_ecc raises the interpreter's recursion limit to 100,000, far past what the C
    stack holds: any recursive parser (json, tomllib, msgspec) then crashes the process with
    SIGSEGV on deeply nested input instead of raising RecursionError. py_ecc's BLS code does not
    recurse deeply, so the limit goes back to what it was (CPython's 1,000 at most, in case
    py_ecc was imported elsewhere first).
    """
    limit = sys.getrecursionlimit()
    from py_ecc.bls.ciphersuites import G2ProofOfPossession

    sys.setrecursionlimit(min(limit, 1_000))
    return G2ProofOfPossession


SIGN_DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
IDENTITY_G1 = bytes([0xC0]) + bytes(47)
IDENTITY_G2 = bytes([0xC0]) + bytes(95)


class BlsSecretKey(int):
    """A scalar in ``[1, r)``; construct it with :func:`secret_key_from_seed`."""

    def __repr__(self) -> str:  # never print a secret
        return "BlsSecretKey(<hidden>)"


def secret_key_from_seed(seed: bytes) -> BlsSecretKey:
    """IETF ``KeyGen`` (HKDF-SHA256) from at least 32 bytes of seed material."""
    if len(seed) < 32:
        raise ValueError("BLS key generation needs at least 32 bytes of seed")
    return BlsSecretKey(_py_ecc().KeyGen(seed))


class Backend(Protocol):
    name: str

    def public_key(self, sk: BlsSecretKey) -> BlsPublicKey: ...
    def sign(self, sk: BlsSecretKey, message: bytes, dst: bytes) -> BlsSignature: ...
    def verify(self, pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool: ...
    def is_valid_public_key(self, pk: bytes) -> bool: ...
    def aggregate_signatures(self, signatures: Sequence[bytes]) -> BlsSignature: ...
    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool: ...


class PyEccBackend:
    """The reference: py-ecc's own implementation of the ciphersuite."""

    name = "pyecc"

    def public_key(self, sk: BlsSecretKey) -> BlsPublicKey:
        _check_secret(sk)
        return BlsPublicKey(bytes(_py_ecc().SkToPk(int(sk))))

    def sign(self, sk: BlsSecretKey, message: bytes, dst: bytes) -> BlsSignature:
        _check_secret(sk)
        if dst == SIGN_DST:
            return BlsSignature(bytes(_py_ecc().Sign(int(sk), message)))
        return BlsSignature(bytes(_py_ecc()._CoreSign(int(sk), message, dst)))

    def verify(self, pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
        try:
            return bool(_py_ecc()._CoreVerify(BLSPubkey(pk), message, BLSSignature(signature), dst))
        except Exception:  # py-ecc raises assorted errors on malformed points
            return False

    def is_valid_public_key(self, pk: bytes) -> bool:
        try:
            return bool(_py_ecc().KeyValidate(BLSPubkey(pk)))
        except Exception:
            return False

    def aggregate_signatures(self, signatures: Sequence[bytes]) -> BlsSignature:
        if not signatures:
            raise ValueError("nothing to aggregate")
        return BlsSignature(bytes(_py_ecc().Aggregate([BLSSignature(s) for s in signatures])))

    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        try:
            return bool(
                _py_ecc().FastAggregateVerify([BLSPubkey(pk) for pk in pks], message, BLSSignature(signature))
            )
        except Exception:
            return False


@functools.lru_cache(maxsize=4096)
def _g1(pk: bytes) -> ark.G1Point | None:
    """A validated public key point, or None.

    Decoded unchecked (which still refuses a bad flag, an x of p or more and an x off the curve)
    and then checked in the subgroup once: the checked decoder would run the same subgroup check,
    so decoding checked and then checking again did it twice."""
    if len(pk) != 48 or pk == IDENTITY_G1:
        return None
    try:
        point = ark.G1Point.from_compressed_bytes_unchecked(pk)
    except ValueError:
        return None
    if point == ark.G1Point.identity() or not point.is_in_subgroup():
        return None
    return point


def _g2(signature: bytes) -> ark.G2Point | None:
    """A signature point in the G2 subgroup (decoded as :func:`_g1` decodes), or None."""
    if len(signature) != 96:
        return None
    try:
        point = ark.G2Point.from_compressed_bytes_unchecked(signature)
    except ValueError:
        return None
    return point if point.is_in_subgroup() else None


_G1_GENERATOR = ark.G1Point()
_NEG_G1_GENERATOR = -_G1_GENERATOR


class ArkworksBackend:
    """The ciphersuite on arkworks curve operations; must match :class:`PyEccBackend` exactly."""

    name = "arkworks"

    def public_key(self, sk: BlsSecretKey) -> BlsPublicKey:
        _check_secret(sk)
        return BlsPublicKey((_G1_GENERATOR * ark.Scalar(int(sk))).to_compressed_bytes())

    def sign(self, sk: BlsSecretKey, message: bytes, dst: bytes) -> BlsSignature:
        _check_secret(sk)
        point = ark.G2Point.hash_to_curve(message, dst) * ark.Scalar(int(sk))
        return BlsSignature(point.to_compressed_bytes())

    def _core_verify(self, pk_point: ark.G1Point, message: bytes, signature: bytes, dst: bytes) -> bool:
        sig_point = _g2(signature)
        if sig_point is None or sig_point == ark.G2Point.identity():
            return False
        # e(pk, H(m)) == e(g1, sig)  <=>  e(pk, H(m)) * e(-g1, sig) == 1
        hashed = ark.G2Point.hash_to_curve(message, dst)
        return ark.GT.pairing_check([pk_point, _NEG_G1_GENERATOR], [hashed, sig_point])

    def verify(self, pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
        point = _g1(bytes(pk))
        return point is not None and self._core_verify(point, message, signature, dst)

    def is_valid_public_key(self, pk: bytes) -> bool:
        return _g1(bytes(pk)) is not None

    def aggregate_signatures(self, signatures: Sequence[bytes]) -> BlsSignature:
        if not signatures:
            raise ValueError("nothing to aggregate")
        total = ark.G2Point.identity()
        for signature in signatures:
            point = _g2(signature)
            if point is None:
                raise ValueError("cannot aggregate an invalid signature")
            total = total + point
        return BlsSignature(total.to_compressed_bytes())

    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        if not pks:
            return False
        total = ark.G1Point.identity()
        for pk in pks:
            point = _g1(bytes(pk))
            if point is None:
                return False
            total = total + point
        if total == ark.G1Point.identity():
            return False
        return self._core_verify(total, message, signature, SIGN_DST)


def _check_secret(sk: int) -> None:
    if not 0 < sk < CURVE_ORDER:
        raise ValueError("a BLS secret key is a scalar in [1, r)")


BACKENDS: dict[str, Backend] = {"pyecc": PyEccBackend(), "arkworks": ArkworksBackend()}
_backend: Backend = BACKENDS["arkworks"]


def use_backend(name: str) -> Backend:
    """Switch the process-wide backend (tests and benchmarks); returns the previous one."""
    global _backend  # noqa: PLW0603 - a process-wide choice, like a logging level
    previous = _backend
    _backend = BACKENDS[name]
    return previous


def backend() -> Backend:
    return _backend


def public_key(sk: BlsSecretKey) -> BlsPublicKey:
    return _backend.public_key(sk)


def sign(sk: BlsSecretKey, message: bytes) -> BlsSignature:
    return _backend.sign(sk, message, SIGN_DST)


def verify(pk: bytes, message: bytes, signature: bytes) -> bool:
    return _backend.verify(pk, message, signature, SIGN_DST)


def prove_possession(sk: BlsSecretKey) -> BlsSignature:
    """The proof of possession: a signature over the public key bytes in the POP domain."""
    return _backend.sign(sk, bytes(_backend.public_key(sk)), POP_DST)


_known_possessions: set[tuple[bytes, bytes]] = set()
_KNOWN_MAX = 100_000
_WEIGHT_BITS = 64
_CHUNK = 128
"""Pairs per product of pairings in a large batch (see :func:`_batch_possessions`)."""


def verify_possession(pk: bytes, proof: bytes) -> bool:
    if (bytes(pk), bytes(proof)) in _known_possessions:
        return True
    return _backend.verify(pk, bytes(pk), proof, POP_DST)


def verify_possessions(items: Sequence[tuple[bytes, bytes]]) -> list[bool]:
    """Each (public key, proof of possession) pair's verdict, the same as
    :func:`verify_possession` gives one by one, at a fraction of the cost for a large batch
    (2,000 pairs: 1.8 s on two cores, 2.6 s on one, against 4.6 s one by one).

    On arkworks the pairs not already known valid are checked as one randomized batch: every
    key and proof decoded and checked in its subgroup (the identity refused) as alone, then, with
    a fresh secret weight ``r_i`` in ``[1, 2^64)`` per pair, the product of pairings
    ``e(-g1, Σ r_i·σ_i) · Π e(r_i·pk_i, H(pk_i)) = 1`` (one multi-Miller loop and one final
    exponentiation per :data:`_CHUNK` pairs). It holds whenever every pair is valid. If some
    pair is not, its error ``e(pk_i, H(pk_i)) / e(g1, σ_i)`` is a non-trivial element of a group
    of prime order, raised to ``r_i``: whatever the other pairs, at most one value of ``r_i``
    cancels it, so a forgery passes with a chance of at most 2^-64 (the weights are drawn after
    the pairs are fixed and nobody sees them, so a forger cannot search for a lucky draw). If the
    batch fails, every pair is checked alone, so the verdicts, and the error that names a bad
    registration, are always the individual ones. A batch of 0 or 1 pair is checked alone.

    The weights come from :mod:`secrets`: not reproducible, but they never reach the state, and
    the verdicts are those of the individual checks (all valid: accepted on every node, every
    time; one invalid: refused on every node unless its own draw hits that 2^-64 chance), so
    every node reaches the same state, as with one-by-one checks.

    Valid pairs are remembered (a bounded set), so the rules' own :func:`verify_possession` of
    each registration costs nothing once its block or genesis document checked them as a batch.
    """
    pairs = [(bytes(pk), bytes(proof)) for pk, proof in items]
    unknown = list(dict.fromkeys(pair for pair in pairs if pair not in _known_possessions))
    valid: set[tuple[bytes, bytes]] = set()
    if isinstance(_backend, ArkworksBackend) and len(unknown) > 1 and _batch_possessions(unknown):
        valid.update(unknown)
    else:
        valid.update(pair for pair in unknown if _backend.verify(pair[0], pair[0], pair[1], POP_DST))
    verdicts = [pair in valid or pair in _known_possessions for pair in pairs]
    if len(_known_possessions) + len(valid) > _KNOWN_MAX:
        _known_possessions.clear()
    _known_possessions.update(valid)
    return verdicts


def _batch_possessions(pairs: list[tuple[bytes, bytes]]) -> bool:
    """True if every pair is a valid PoP; False if some pair is not (bar a 2^-64 chance).

    A batch of more than :data:`_CHUNK` pairs goes in chunks, each its own weighted product of
    pairings, checked on a worker thread while this thread decodes and hashes the next chunk
    (the pairing releases the GIL; hashing to G2, the larger cost, does not): on a second core
    the pairings then cost almost nothing. Each chunk adds one final exponentiation (~1 ms)."""
    if len(pairs) <= _CHUNK:
        terms = _weighted_terms(pairs)
        return terms is not None and _check_terms(*terms)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bls-batch")
    try:
        checks = []
        for start in range(0, len(pairs), _CHUNK):
            terms = _weighted_terms(pairs[start : start + _CHUNK])
            if terms is None:
                return False
            checks.append(worker.submit(_check_terms, *terms))
        return all(check.result() for check in checks)
    finally:
        worker.shutdown(cancel_futures=True)


_Terms = tuple[list[ark.G1Point], list[ark.G2Point], list[ark.G2Point], list[ark.Scalar]]


def _weighted_terms(pairs: list[tuple[bytes, bytes]]) -> _Terms | None:
    """(r_i·pk_i, H(pk_i), σ_i, r_i) for each pair, or None if a key or proof is not a valid
    point or a proof is the identity (what the single check refuses before any pairing)."""
    weighted_keys: list[ark.G1Point] = []
    hashed_keys: list[ark.G2Point] = []
    proofs: list[ark.G2Point] = []
    identity = ark.G2Point.identity()
    weights = _batch_weights(len(pairs))
    for (pk, proof), weight in zip(pairs, weights, strict=True):
        key, signature = _g1(pk), _g2(proof)
        if key is None or signature is None or signature == identity:
            return None
        weighted_keys.append(key * weight)  # the weight on G1, where a multiplication is cheapest
        hashed_keys.append(ark.G2Point.hash_to_curve(pk, POP_DST))
        proofs.append(signature)
    return weighted_keys, hashed_keys, proofs, weights


def _batch_weights(count: int) -> list[ark.Scalar]:
    """``count`` secret weights, uniform in ``[1, 2^64)`` (zero would drop its pair from the
    check), drawn in one call: a system call per pair would hand the GIL back and forth with
    the worker thread of :func:`_batch_possessions`, which then waits for all the hashing."""
    raw = secrets.token_bytes(8 * count)
    values = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]
    return [ark.Scalar(value or 1 + secrets.randbelow((1 << _WEIGHT_BITS) - 1)) for value in values]


def _check_terms(
    weighted_keys: list[ark.G1Point],
    hashed_keys: list[ark.G2Point],
    proofs: list[ark.G2Point],
    weights: list[ark.Scalar],
) -> bool:
    """``e(-g1, Σ r_i·σ_i) · Π e(r_i·pk_i, H(pk_i)) = 1``: one multi-Miller loop, one final
    exponentiation (the proofs were checked in the subgroup, which the multi-exponentiation
    assumes)."""
    combined = ark.G2Point.multiexp_unchecked(proofs, weights)
    return bool(ark.GT.pairing_check([*weighted_keys, _NEG_G1_GENERATOR], [*hashed_keys, combined]))


def is_valid_public_key(pk: bytes) -> bool:
    return _backend.is_valid_public_key(pk)


def aggregate_signatures(signatures: Sequence[bytes]) -> BlsSignature:
    return _backend.aggregate_signatures(signatures)


def fast_aggregate_verify(pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """One message signed by every key in ``pks`` (each with a verified proof of possession)."""
    return _backend.fast_aggregate_verify(pks, message, signature)
