"""The BLS facade: the arkworks layer must match py-ecc's reference byte for byte and verdict for verdict."""

from __future__ import annotations

from collections.abc import Iterator

import py_arkworks_bls12381 as ark
import pytest

from state.crypto import bls

SEEDS = [bytes([i]) * 32 for i in range(1, 5)]


@pytest.fixture(params=["pyecc", "arkworks"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = bls.use_backend(request.param)
    yield request.param
    bls._backend = previous


def _negate(pk: bytes) -> bytes:
    return (-ark.G1Point.from_compressed_bytes(pk)).to_compressed_bytes()


def test_backends_produce_identical_bytes() -> None:
    ref, fast = bls.BACKENDS["pyecc"], bls.BACKENDS["arkworks"]
    for seed in SEEDS:
        sk = bls.secret_key_from_seed(seed)
        assert ref.public_key(sk) == fast.public_key(sk)
        for message in (b"", b"checkpoint", bytes(range(200))):
            assert ref.sign(sk, message, bls.SIGN_DST) == fast.sign(sk, message, bls.SIGN_DST)
        assert ref.sign(sk, b"pk", bls.POP_DST) == fast.sign(sk, b"pk", bls.POP_DST)
    sigs = [fast.sign(bls.secret_key_from_seed(s), b"m", bls.SIGN_DST) for s in SEEDS]
    assert ref.aggregate_signatures(sigs) == fast.aggregate_signatures(sigs)


def test_backends_agree_on_every_verdict() -> None:
    keys = [bls.secret_key_from_seed(s) for s in SEEDS]
    pks = [bls.BACKENDS["arkworks"].public_key(k) for k in keys]
    sigs = [bls.BACKENDS["arkworks"].sign(k, b"m", bls.SIGN_DST) for k in keys]
    aggregate = bls.BACKENDS["arkworks"].aggregate_signatures(sigs)
    cases = [
        (pks, b"m", aggregate),
        (pks, b"other", aggregate),
        (pks[:3], b"m", aggregate),
        ([], b"m", aggregate),
        ([pks[0], _negate(pks[0])], b"m", bls.IDENTITY_G2),
        ([bls.IDENTITY_G1], b"m", bls.IDENTITY_G2),
        ([pks[0], pks[0][:-1] + b"\x00"], b"m", aggregate),
        (pks, b"m", aggregate[:-1] + bytes([aggregate[-1] ^ 1])),
    ]
    for case_pks, message, signature in cases:
        verdicts = {
            name: b.fast_aggregate_verify(case_pks, message, signature) for name, b in bls.BACKENDS.items()
        }
        assert len(set(verdicts.values())) == 1, (case_pks, message, verdicts)
    single = [(pks[0], b"m", sigs[0]), (pks[0], b"m", sigs[1]), (bls.IDENTITY_G1, b"m", bls.IDENTITY_G2)]
    for pk, message, signature in single:
        verdicts = {name: b.verify(pk, message, signature, bls.SIGN_DST) for name, b in bls.BACKENDS.items()}
        assert len(set(verdicts.values())) == 1


def test_sign_verify_and_aggregate(backend: str) -> None:
    keys = [bls.secret_key_from_seed(s) for s in SEEDS]
    pks = [bls.public_key(k) for k in keys]
    sigs = [bls.sign(k, b"block") for k in keys]
    assert all(bls.verify(pk, b"block", sig) for pk, sig in zip(pks, sigs, strict=True))
    assert not bls.verify(pks[0], b"block", sigs[1])
    aggregate = bls.aggregate_signatures(sigs)
    assert bls.fast_aggregate_verify(pks, b"block", aggregate)
    assert not bls.fast_aggregate_verify(pks[:-1], b"block", aggregate)
    assert not bls.fast_aggregate_verify(pks, b"other", aggregate)


def test_identity_key_signature_and_cancelling_aggregate_are_refused(backend: str) -> None:
    pk = bls.public_key(bls.secret_key_from_seed(SEEDS[0]))
    assert not bls.is_valid_public_key(bls.IDENTITY_G1)
    assert not bls.verify(bls.IDENTITY_G1, b"m", bls.IDENTITY_G2)
    assert not bls.verify(pk, b"m", bls.IDENTITY_G2)
    # the rogue pair [pk, -pk] sums to the identity: an identity signature must not pass
    assert not bls.fast_aggregate_verify([pk, _negate(pk)], b"m", bls.IDENTITY_G2)
    assert not bls.fast_aggregate_verify([], b"m", bls.IDENTITY_G2)


def test_proof_of_possession(backend: str) -> None:
    sk, other = (bls.secret_key_from_seed(s) for s in SEEDS[:2])
    pk = bls.public_key(sk)
    proof = bls.prove_possession(sk)
    assert bls.verify_possession(pk, proof)
    assert not bls.verify_possession(pk, bls.prove_possession(other))
    # a plain signature over the key bytes is not a PoP: the domains differ
    assert not bls.verify_possession(pk, bls.sign(sk, bytes(pk)))
    assert not bls.verify_possession(bls.IDENTITY_G1, proof)


def test_malformed_inputs_are_rejected_not_raised(backend: str) -> None:
    pk = bls.public_key(bls.secret_key_from_seed(SEEDS[0]))
    sig = bls.sign(bls.secret_key_from_seed(SEEDS[0]), b"m")
    assert not bls.is_valid_public_key(b"\x00" * 48)
    assert not bls.is_valid_public_key(pk[:47])
    assert not bls.verify(pk, b"m", b"\xff" * 96)
    assert not bls.verify(pk, b"m", sig[:95])
    with pytest.raises(ValueError):
        bls.secret_key_from_seed(b"short")
    with pytest.raises(ValueError):
        bls.sign(bls.BlsSecretKey(0), b"m")


def test_secret_key_repr_hides_the_secret() -> None:
    assert "hidden" in repr(bls.secret_key_from_seed(SEEDS[0]))


def test_a_batch_of_possession_proofs_gives_each_pair_its_own_verdict(backend: str) -> None:
    secrets = [bls.secret_key_from_seed(bytes([i + 1]) * 32) for i in range(6)]
    keys = [bls.public_key(sk) for sk in secrets]
    proofs = [bls.prove_possession(sk) for sk in secrets]
    good = list(zip(keys, proofs, strict=True))
    bls._known_possessions.clear()
    assert bls.verify_possessions(good) == [True] * 6
    # one pair with another's proof, one with a signature over another message, one identity,
    # one undecodable: each refused, and the valid ones around them still accepted
    other = bls.sign(secrets[4], b"not the key")
    bad = [
        (keys[0], proofs[1]),
        good[2],
        (keys[4], other),
        (keys[3], bls.IDENTITY_G2),
        good[5],
        (b"\x00" * 48, proofs[0]),
    ]
    bls._known_possessions.clear()
    assert bls.verify_possessions(bad) == [False, True, False, False, True, False]
    for pk, proof in bad:  # nothing refused was remembered as verified
        assert bls.verify_possession(pk, proof) == bls.backend().verify(pk, bytes(pk), proof, bls.POP_DST)
    # two invalid proofs that cancel in a sum (pk_a's proof + x, pk_b's proof - x) still fail:
    # the batch weights each pair by its own random scalar
    a, b = ark.G2Point.from_compressed_bytes(proofs[0]), ark.G2Point.from_compressed_bytes(proofs[1])
    shift = ark.G2Point.hash_to_curve(b"shift", bls.POP_DST)
    forged = [(keys[0], (a + shift).to_compressed_bytes()), (keys[1], (b - shift).to_compressed_bytes())]
    bls._known_possessions.clear()
    assert bls.verify_possessions(forged) == [False, False]
