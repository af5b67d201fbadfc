"""The sparse Merkle tree: definition, order independence, proofs, versions and ICS-23 vectors."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.encoding import decode, encode
from state.hashing import blake3_256
from state.smt import EMPTY, Proof, SparseMerkleTree, compute_root, verify_proof
from tests import ics23
from tests.conftest import load_vectors, vector_path


def definition_root(items: dict[bytes, bytes], digest=blake3_256) -> bytes:
    """The root straight from the definition: recursive split by path bit, lone leaves lifted."""

    def root(pairs: list[tuple[int, bytes, bytes]], depth: int) -> bytes:
        if not pairs:
            return EMPTY
        if len(pairs) == 1:
            _, path, value = pairs[0]
            return digest(b"\x00" + path + digest(value))
        bit = 255 - depth
        left = [p for p in pairs if not (p[0] >> bit) & 1]
        right = [p for p in pairs if (p[0] >> bit) & 1]
        return digest(b"\x01" + root(left, depth + 1) + root(right, depth + 1))

    pairs = [(int.from_bytes(digest(k), "big"), digest(k), v) for k, v in items.items()]
    return root(pairs, 0)


keys = st.binary(min_size=1, max_size=3)
values = st.binary(min_size=0, max_size=8)
change_sets = st.lists(st.dictionaries(keys, st.none() | values, max_size=12), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(change_sets)
def test_batched_updates_match_the_definition(batches: list[dict[bytes, bytes | None]]) -> None:
    tree = SparseMerkleTree()
    model: dict[bytes, bytes] = {}
    for batch in batches:
        tree = tree.update(batch)
        for key, value in batch.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert tree.root == definition_root(model)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_root_is_independent_of_insertion_order(items: dict[bytes, bytes], rng: random.Random) -> None:
    order = list(items.items())
    rng.shuffle(order)
    one_by_one = SparseMerkleTree()
    for key, value in order:
        one_by_one = one_by_one.update({key: value})
    assert one_by_one.root == SparseMerkleTree.from_items(items.items()).root


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, values, max_size=30), st.lists(keys, max_size=10))
def test_membership_and_absence_proofs(items: dict[bytes, bytes], probes: list[bytes]) -> None:
    tree = SparseMerkleTree.from_items(items.items())
    for key in list(items)[:10] + probes:
        proof = tree.prove(key)
        value = items.get(key)
        assert verify_proof(tree.root, key, value, proof)
        # the same proof never supports a different claim
        assert not verify_proof(tree.root, key, (value or b"") + b"!", proof)
        if value is not None:
            assert not verify_proof(tree.root, key, None, proof)
        # the proof survives its own encoding (what a light client receives)
        assert verify_proof(tree.root, key, value, decode(encode(proof), Proof))


def test_empty_tree() -> None:
    tree = SparseMerkleTree()
    assert tree.root == EMPTY
    assert verify_proof(EMPTY, b"k", None, tree.prove(b"k"))
    assert not verify_proof(EMPTY, b"k", b"v", tree.prove(b"k"))


def test_tampered_proofs_are_rejected() -> None:
    items = {bytes([i]): bytes([i]) * 4 for i in range(50)}
    tree = SparseMerkleTree.from_items(items.items())
    proof = tree.prove(b"\x07")
    assert verify_proof(tree.root, b"\x07", items[b"\x07"], proof)
    flipped = bytes([proof.siblings[0][0] ^ 1]) + proof.siblings[0][1:]
    bad = [
        Proof(proof.depth, proof.present, (flipped, *proof.siblings[1:])),
        Proof(proof.depth - 1, proof.present, proof.siblings),
        Proof(proof.depth, proof.present, proof.siblings[1:]),
        Proof(proof.depth, proof.present, (*proof.siblings, EMPTY)),
        Proof(proof.depth, bytes(len(proof.present)), proof.siblings),
        Proof(proof.depth, proof.present, proof.siblings, b"\x00" * 32, b"\x00" * 32),
        Proof(300, proof.present, proof.siblings),
    ]
    for candidate in bad:
        assert not verify_proof(tree.root, b"\x07", items[b"\x07"], candidate)
    assert not verify_proof(tree.root, b"\x08", items[b"\x07"], proof)


def test_absence_proof_must_not_point_at_a_foreign_leaf() -> None:
    items = {bytes([i]): b"v" for i in range(64)}
    tree = SparseMerkleTree.from_items(items.items())
    absent = next(k for k in (bytes([200, i]) for i in range(256)) if tree.prove(k).other_path)
    proof = tree.prove(absent)
    assert verify_proof(tree.root, absent, None, proof)
    # claiming the other leaf *is* the key, or moving it off the path, fails
    forged = Proof(proof.depth, proof.present, proof.siblings, blake3_256(absent), proof.other_value_hash)
    assert not verify_proof(tree.root, absent, None, forged)
    off_path = bytes([proof.other_path[0] ^ 0x80]) + proof.other_path[1:]
    moved = Proof(proof.depth, proof.present, proof.siblings, off_path, proof.other_value_hash)
    assert not verify_proof(tree.root, absent, None, moved)


def test_versions_share_nodes_and_stay_valid() -> None:
    v1 = SparseMerkleTree.from_items((bytes([i]), b"a") for i in range(100))
    v2 = v1.update({b"\x01": b"b", b"\x02": None})
    assert v1.root != v2.root
    assert verify_proof(v1.root, b"\x01", b"a", v1.prove(b"\x01"))
    assert verify_proof(v2.root, b"\x01", b"b", v2.prove(b"\x01"))
    assert verify_proof(v2.root, b"\x02", None, v2.prove(b"\x02"))
    assert v1.update({}) is v1
    assert v2.update({b"\x01": b"a", b"\x02": b"a"}).root == v1.root


def test_deleting_everything_gives_the_empty_root() -> None:
    tree = SparseMerkleTree.from_items((bytes([i]), b"x") for i in range(30))
    assert tree.update({bytes([i]): None for i in range(30)}).root == EMPTY


def test_proofs_are_small() -> None:
    rng = random.Random(5)
    tree = SparseMerkleTree.from_items((rng.randbytes(32), b"v" * 40) for _ in range(20_000))
    sizes = [len(encode(tree.prove(rng.randbytes(32)))) for _ in range(50)]
    assert max(sizes) < 700  # ~log2(20k) = 15 siblings of 32 bytes


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


ICS23_FILES = [case["file"] for case in load_vectors("ics23_smt/index.json")["cases"]]


@pytest.mark.parametrize("name", ICS23_FILES)
def test_ics23_smt_vectors_in_sha256_mode(name: str) -> None:
    import json

    vector = json.loads(vector_path(f"ics23_smt/{name}").read_text())
    key, root = bytes.fromhex(vector["key"]), bytes.fromhex(vector["root"])
    kind, parsed = ics23.parse_commitment(bytes.fromhex(vector["proof"]))
    if kind == "exist":
        assert isinstance(parsed, ics23.Existence)
        proof, _ = ics23.to_native(parsed)
        value = bytes.fromhex(vector["value"])
        assert verify_proof(root, key, value, proof, _sha256)
        assert not verify_proof(root, key, value + b"x", proof, _sha256)
        return
    left, right = parsed  # type: ignore[misc]
    path = _sha256(key)
    converted = {}
    for side, neighbour in (("left", left), ("right", right)):
        if neighbour is None:
            continue
        proof, directions = ics23.to_native(neighbour)
        assert verify_proof(root, neighbour.key, neighbour.value, proof, _sha256)
        assert compute_root(neighbour.key, neighbour.value, proof, _sha256) == root
        converted[side] = (proof, directions, _sha256(neighbour.key))
    assert converted, "a non-existence proof needs at least one neighbour"
    if "left" in converted:
        assert converted["left"][2] < path
    if "right" in converted:
        assert path < converted["right"][2]
    if "left" in converted and "right" in converted:
        (lp, ld, lpath), (rp, rd, rpath) = converted["left"], converted["right"]
        split = ics23.common_prefix(lpath, rpath)
        assert ld[split] == 0 and rd[split] == 1
        assert ics23.is_edge(lp, ld, split + 1, side=1) and ics23.is_edge(rp, rd, split + 1, side=0)
    elif "left" in converted:
        lp, ld, _ = converted["left"]
        assert ics23.is_edge(lp, ld, 0, side=1)
    else:
        rp, rd, _ = converted["right"]
        assert ics23.is_edge(rp, rd, 0, side=0)


def test_our_tree_in_sha256_mode_is_the_celestia_layout() -> None:
    """With SHA-256 our tree computes exactly the ICS-23 SmtSpec leaf and inner hashes."""
    tree = SparseMerkleTree.from_items([(b"a", b"1"), (b"b", b"2")], _sha256)
    assert tree.root == definition_root({b"a": b"1", b"b": b"2"}, _sha256)
    only = SparseMerkleTree.from_items([(b"a", b"1")], _sha256)
    assert only.root == _sha256(b"\x00" + _sha256(b"a") + _sha256(b"1"))


PINNED_HISTORY = "74ef1568fcc93356d2d7f5b95af622cbe6ba56124feb1ab40ab73df602540eeb"
"""The digest of :func:`_pinned_history`, computed with the tree as it was before its leaves held
the key and value themselves (issue 23): the same inserts and deletes must give the same roots
and the same proofs, byte for byte."""


def _pinned_history() -> tuple[str, SparseMerkleTree, dict[bytes, bytes]]:
    rng = random.Random(2023)
    tree, model = SparseMerkleTree(), {}
    history = hashlib.sha256()
    for _ in range(60):
        changes: dict[bytes, bytes | None] = {}
        for _ in range(rng.choice([1, 1, 2, 3, 10, 100, 1000])):
            if model and rng.random() < 0.3:
                changes[rng.choice(list(model))] = None
            elif rng.random() < 0.05:
                changes[rng.randbytes(3)] = None  # most likely absent
            else:
                changes[rng.randbytes(rng.randrange(1, 40))] = rng.randbytes(rng.randrange(0, 50))
        tree = tree.update(changes)
        for key, value in changes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        history.update(tree.root)
        probes = rng.sample(list(model), min(5, len(model))) + [rng.randbytes(4) for _ in range(5)]
        for probe in probes:
            history.update(encode(tree.prove(probe)))
    return history.hexdigest(), tree, model


def test_roots_and_proofs_of_a_fixed_history_are_pinned() -> None:
    digest, tree, model = _pinned_history()
    assert digest == PINNED_HISTORY
    assert tree.root == definition_root(model)


def test_a_leaf_holds_the_maps_own_key_and_value() -> None:
    """What makes a million-account tree fit (issue 23): a leaf references the key and the value
    the state's map holds, instead of keeping copies of their hashes."""
    key, value = b"account/" + bytes(range(32)), b"\x92\x01\x02"
    tree = SparseMerkleTree().update({key: value})
    leaf = tree._root
    assert leaf is not None and leaf[1] is key and leaf[2] is value
    grown, found = tree.update({b"other": b"v"}), []
    stack = [grown._root]
    while stack:
        node = stack.pop()
        if node is not None and isinstance(node[1], bytes):
            found.append(node)
        elif node is not None:
            stack.extend(node[1:])
    assert any(node is leaf for node in found) and len(found) == 2  # shared with the old version
