"""The BLS facade: the arkworks layer must match py-ecc's reference byte for byte and verdict for verdict."""

from __future__ import annotations

import functools
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


# arkworks only: 8 s on py-ecc, whose verdicts test_batch_verdicts_match_py_ecc_one_by_one compares
@pytest.mark.parametrize("backend", ["arkworks"], indirect=True)
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


def _possessions(count: int) -> list[tuple[bytes, bytes]]:
    secrets = [bls.secret_key_from_seed(bytes([0x50, i + 1]) * 16) for i in range(count)]
    return [(bytes(bls.public_key(sk)), bytes(bls.prove_possession(sk))) for sk in secrets]


def _off_subgroup_points() -> tuple[bytes, bytes]:
    """A G1 and a G2 encoding of points on the curves but outside the prime-order subgroups (the
    cofactors make almost every curve point one): both must be refused as keys and proofs."""
    bls._py_ecc()  # imports py_ecc with the recursion limit put back
    from py_ecc.bls.point_compression import compress_G1, compress_G2, modular_squareroot_in_FQ2
    from py_ecc.fields import optimized_bls12_381_FQ as FQ
    from py_ecc.fields import optimized_bls12_381_FQ2 as FQ2
    from py_ecc.optimized_bls12_381.optimized_curve import b, b2, field_modulus

    x = 1
    while pow(int(FQ(x) ** 3 + b), (field_modulus - 1) // 2, field_modulus) != 1:
        x += 1
    y = FQ(x) ** 3 + b
    g1 = compress_G1((FQ(x), y ** ((field_modulus + 1) // 4), FQ.one())).to_bytes(48, "big")
    x2 = FQ2([1, 0])
    while (y2 := modular_squareroot_in_FQ2(x2**3 + b2)) is None:
        x2 += FQ2([1, 0])
    high, low = compress_G2((x2, y2, FQ2.one()))
    g2 = high.to_bytes(48, "big") + low.to_bytes(48, "big")
    assert not ark.G1Point.from_compressed_bytes_unchecked(g1).is_in_subgroup()
    assert not ark.G2Point.from_compressed_bytes_unchecked(g2).is_in_subgroup()
    return g1, g2


def test_points_outside_the_subgroups_are_refused_by_both_backends() -> None:
    g1, g2 = _off_subgroup_points()
    (pk, proof), (other_pk, _) = _possessions(2)
    for name, backend in bls.BACKENDS.items():
        assert not backend.is_valid_public_key(g1), name
        assert not backend.verify(g1, g1, proof, bls.POP_DST), name
        assert not backend.verify(pk, pk, g2, bls.POP_DST), name
    previous = bls.use_backend("arkworks")
    try:
        bls._known_possessions.clear()
        assert bls.verify_possessions([(g1, proof), (pk, g2), (pk, proof), (other_pk, g2)]) == [
            False,
            False,
            True,
            False,
        ]
    finally:
        bls._backend = previous


def test_batch_verdicts_match_py_ecc_one_by_one() -> None:
    """The arkworks batch gives, pair by pair, py-ecc's own verdict of the single check."""
    pairs = _possessions(3)
    keys = [pk for pk, _ in pairs]
    proofs = [proof for _, proof in pairs]
    sign_domain = bls.sign(bls.secret_key_from_seed(bytes([0x50, 1]) * 16), keys[0])
    cases = [
        pairs,
        [pairs[0], (keys[1], proofs[2]), pairs[2]],  # one bad PoP in the middle
        [pairs[0], (bls.IDENTITY_G1, proofs[1]), (keys[2], bls.IDENTITY_G2)],
        [pairs[1], (keys[0], sign_domain)],  # a signature over the key in the SIGN domain
        [(keys[1], proofs[1][:-1] + bytes([proofs[1][-1] ^ 1])), pairs[1], pairs[1]],  # corrupt; repeats
        [(_negate(keys[0]), proofs[0]), pairs[2]],
    ]
    reference = functools.cache(lambda pk, proof: bls.BACKENDS["pyecc"].verify(pk, pk, proof, bls.POP_DST))
    previous = bls.use_backend("arkworks")
    try:
        for case in cases:
            bls._known_possessions.clear()
            assert bls.verify_possessions(case) == [reference(pk, proof) for pk, proof in case], case
    finally:
        bls._backend = previous


def test_empty_and_single_batches(backend: str) -> None:
    (pk, proof), (other_pk, other_proof) = _possessions(2)
    bls._known_possessions.clear()
    assert bls.verify_possessions([]) == []
    assert bls.verify_possessions([(pk, other_proof)]) == [False]
    assert bls.verify_possessions([(pk, proof)]) == [True]
    assert bls.verify_possessions([(bls.IDENTITY_G1, bls.IDENTITY_G2)]) == [False]
    assert bls.verify_possessions([(other_pk, bls.IDENTITY_G2)]) == [False]


def test_a_large_batch_goes_in_chunks_and_names_each_bad_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunked (on the worker thread) as a batch of thousands is: a bad pair in the first chunk and
    one in the last are each found, and the valid pairs accepted."""
    monkeypatch.setattr(bls, "_CHUNK", 3)
    previous = bls.use_backend("arkworks")
    try:
        pairs = _possessions(8)
        bls._known_possessions.clear()
        assert bls._batch_possessions(pairs)
        assert bls.verify_possessions(pairs) == [True] * 8
        bad = [*pairs]
        bad[1] = (pairs[1][0], pairs[2][1])
        bad[7] = (pairs[7][0], pairs[6][1])
        bls._known_possessions.clear()
        assert not bls._batch_possessions(bad)
        assert bls.verify_possessions(bad) == [True, False, True, True, True, True, True, False]
        bad[4] = (bls.IDENTITY_G1, pairs[4][1])  # refused while decoding, before any pairing
        assert not bls._batch_possessions(bad)
    finally:
        bls._backend = previous


def test_the_weights_are_what_catch_cancelling_forgeries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two forged proofs whose errors cancel in a plain sum pass an unweighted batch (every weight
    1): the random weights, not the pairing, are what refuse them."""
    (pk_a, proof_a), (pk_b, proof_b) = _possessions(2)
    shift = ark.G2Point.hash_to_curve(b"shift", bls.POP_DST)
    forged = [
        (pk_a, (ark.G2Point.from_compressed_bytes(proof_a) + shift).to_compressed_bytes()),
        (pk_b, (ark.G2Point.from_compressed_bytes(proof_b) - shift).to_compressed_bytes()),
    ]
    assert not bls._batch_possessions(forged)
    monkeypatch.setattr(bls, "_batch_weights", lambda count: [ark.Scalar(1)] * count)
    assert bls._batch_possessions(forged)
    assert [bls.backend().verify(pk, pk, proof, bls.POP_DST) for pk, proof in forged] == [False, False]


def test_a_full_memory_of_verified_pairs_loses_no_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = _possessions(3)
    bls._known_possessions.clear()
    assert bls.verify_possessions(pairs[:1]) == [True]
    monkeypatch.setattr(bls, "_KNOWN_MAX", 2)  # the next batch overflows it: it is emptied first
    assert bls.verify_possessions(pairs) == [True, True, True]
    assert set(pairs[1:]) <= bls._known_possessions
