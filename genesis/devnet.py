"""Deterministic development networks.

``appchain genesis new --nodes N --seed S`` derives every key from ``S``: the same seed gives
byte-identical files on every machine (:mod:`appchain.home.genesis_files` writes them). Such keys are
public knowledge (anyone can derive them from the seed), so the key files say so loudly: they are
for devnets and tests only.

Derivation: ``master = blake3(derive_key_context="appchain devnet keys", S)``; each key seed is
``blake3(master || role || index as 4 big-endian bytes)`` with role ``operator``, ``node``,
``bls`` or ``user``; BLS keys go through the IETF ``KeyGen`` from that seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import blake3
import msgspec

from genesis.document import Genesis, compute_supply
from genesis.presets import DEVNET
from state.crypto import bls, ed25519
from state.encoding import DecodeError, decode_json
from state.events import Allocation, Contribution, GenesisNode, compute_node_proof_message
from state.params import ChainParams
from state.types import ATOMIC_PER_COIN, Atomic, BlsPublicKey, NodeKey

UNSAFE_WARNING = (
    "UNSAFE: deterministic development keys derived from a public seed. "
    "Anyone can recompute them. Never use them on a real network."
)
DEFAULT_GENESIS_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed so files are reproducible
OPERATOR_BALANCE = Atomic(1_000 * ATOMIC_PER_COIN)
USER_BALANCE = Atomic(10_000 * ATOMIC_PER_COIN)
REWARD_POOL = Atomic(1_000_000 * ATOMIC_PER_COIN)


def _master(seed: str) -> bytes:
    return blake3.blake3(seed.encode(), derive_key_context="appchain devnet keys").digest()


def derive_seed(seed: str, role: str, index: int) -> bytes:
    return blake3.blake3(_master(seed) + role.encode() + index.to_bytes(4, "big")).digest()


@dataclass(frozen=True)
class DevNode:
    index: int
    operator: ed25519.SigningKey
    node: ed25519.SigningKey
    bls_secret: bls.BlsSecretKey
    bls_seed: bytes

    @property
    def bls_key(self) -> BlsPublicKey:
        return bls.public_key(self.bls_secret)


def derive_node(seed: str, index: int) -> DevNode:
    bls_seed = derive_seed(seed, "bls", index)
    return DevNode(
        index=index,
        operator=ed25519.SigningKey(derive_seed(seed, "operator", index)),
        node=ed25519.SigningKey(derive_seed(seed, "node", index)),
        bls_secret=bls.secret_key_from_seed(bls_seed),
        bls_seed=bls_seed,
    )


def derive_user(seed: str, index: int) -> ed25519.SigningKey:
    return ed25519.SigningKey(derive_seed(seed, "user", index))


def create_dev_genesis_node(node: DevNode, params: ChainParams) -> GenesisNode:
    """A genesis service node with ``node``'s keys, staked in full by its operator (fee 10%)."""
    bls_key = node.bls_key
    return GenesisNode(
        node_key=NodeKey(node.node.public_key),
        bls_key=bls_key,
        bls_pop=bls.prove_possession(node.bls_secret),
        node_signature=node.node.sign(compute_node_proof_message(node.node.public_key, bls_key)),
        operator=node.operator.public_key,
        operator_fee_bp=1_000,
        contributions=(Contribution(node.operator.public_key, params.staking_requirement),),
    )


def create_devnet_genesis(
    nodes: int,
    seed: str,
    *,
    users: int = 8,
    chain_id: str = "appchain-devnet",
    genesis_time: int = DEFAULT_GENESIS_TIME,
    params: ChainParams = DEVNET,
) -> tuple[Genesis, list[DevNode], list[ed25519.SigningKey]]:
    """A genesis with ``nodes`` fully staked service nodes and ``users`` funded accounts."""
    dev_nodes = [derive_node(seed, i) for i in range(nodes)]
    dev_users = [derive_user(seed, i) for i in range(users)]
    service_nodes = [create_dev_genesis_node(node, params) for node in dev_nodes]
    allocations = [Allocation(n.operator.public_key, OPERATOR_BALANCE) for n in dev_nodes]
    allocations += [Allocation(u.public_key, USER_BALANCE) for u in dev_users]
    draft = Genesis(
        chain_id=chain_id,
        genesis_time=genesis_time,
        params=params,
        total_supply=Atomic(0),
        reward_pool=REWARD_POOL,
        allocations=tuple(sorted(allocations, key=lambda a: a.account)),
        service_nodes=tuple(sorted(service_nodes, key=lambda n: n.node_key)),
        sns_records=(),
    )
    genesis = msgspec.structs.replace(draft, total_supply=Atomic(compute_supply(draft)))
    return genesis, dev_nodes, dev_users


def dev_key_files(dev_nodes: list[DevNode], dev_users: list[ed25519.SigningKey]) -> dict[str, bytes]:
    """The dev key files of a devnet, by name (what goes into ``keys/`` beside its genesis file):
    ``node-<i>.json`` per node, ``nodes.json`` (what :func:`load_dev_nodes` reads) and
    ``accounts.json`` (the operators, then the users). They hold seeds: written mode 0600."""
    files: dict[str, bytes] = {}
    for node in dev_nodes:
        files[f"node-{node.index}.json"] = _json(
            {
                "warning": UNSAFE_WARNING,
                "node_seed": node.node.seed.hex(),
                "node_key": node.node.public_key.hex(),
                "bls_seed": node.bls_seed.hex(),
                "bls_key": node.bls_key.hex(),
                "operator_seed": node.operator.seed.hex(),
                "operator": node.operator.public_key.hex(),
            }
        )
    node_seeds = [
        {"node_seed": n.node.seed.hex(), "bls_seed": n.bls_seed.hex(), "operator_seed": n.operator.seed.hex()}
        for n in dev_nodes
    ]
    files["nodes.json"] = _json({"warning": UNSAFE_WARNING, "nodes": node_seeds})
    accounts = [{"name": f"operator-{n.index}", "seed": n.operator.seed.hex()} for n in dev_nodes]
    accounts += [{"name": f"user-{i}", "seed": u.seed.hex()} for i, u in enumerate(dev_users)]
    files["accounts.json"] = _json({"warning": UNSAFE_WARNING, "accounts": accounts})
    return files


def _json(data: object) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


class DevKeyError(ValueError):
    """A dev key file that cannot be read: one line naming the file and what is wrong."""


def _read_key_list(path: Path, list_name: str, fields: tuple[str, ...]) -> list[dict[str, bytes]]:
    """The entries of the list ``list_name`` in a key file, each field a 32-byte hex seed."""
    try:
        data = decode_json(path.read_bytes())
    except OSError as exc:
        raise DevKeyError(f"{path}: cannot read: {exc.strerror}") from None
    except DecodeError as exc:
        raise DevKeyError(f"{path}: {exc}") from None
    entries = data.get(list_name) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DevKeyError(f"{path}: expected an object with a list {list_name!r}")
    seeds: list[dict[str, bytes]] = []
    for index, entry in enumerate(entries):
        values: dict[str, bytes] = {}
        for name in fields:
            text = entry.get(name) if isinstance(entry, dict) else None
            try:
                values[name] = bytes.fromhex(text) if isinstance(text, str) else b""
            except ValueError:
                values[name] = b""
            if len(values[name]) != 32:
                raise DevKeyError(f"{path}: {list_name}[{index}].{name} must be 32 bytes of hex")
        seeds.append(values)
    return seeds


def load_dev_nodes(path: Path) -> list[tuple[ed25519.SigningKey, bls.BlsSecretKey]]:
    """The (node key, BLS secret) pairs listed in a ``nodes.json`` written by :func:`write_devnet`."""
    return [
        (ed25519.SigningKey(entry["node_seed"]), bls.secret_key_from_seed(entry["bls_seed"]))
        for entry in _read_key_list(path, "nodes", ("node_seed", "bls_seed"))
    ]


def load_dev_accounts(path: Path) -> list[ed25519.SigningKey]:
    """The signing keys listed in an ``accounts.json`` written by :func:`write_devnet`."""
    return [ed25519.SigningKey(entry["seed"]) for entry in _read_key_list(path, "accounts", ("seed",))]
