"""The light client against the node's JSON-RPC proof methods, served in-process from a chain
with certified checkpoints; and every way a node can lie to it, caught."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from appchain.cli.main import main
from appchain.client.lightclient import (
    Lied,
    RpcSource,
    Trusted,
    TrustFile,
    VerifyingClient,
    checkpoint_anchor,
    genesis_anchor,
)
from appchain.home.chain import Chain
from appchain.home.genesis_files import write_devnet
from appchain.home.history import StateHistory
from appchain.home.home import Home, NodeConfig
from appchain.node.ledger import ChainLedger
from appchain.rpc.methods import handle_body
from consensus.checkpoint import CheckpointCertificate, decode_bitset, encode_bitset
from consensus.light import Untrusted
from consensus.mempool import Mempool
from genesis.document import Genesis
from genesis.load import load_genesis
from state.block import Header, compute_block_hash
from state.encoding import decode, encode
from state.namespaces import decode_value, state_key
from state.smt import Proof, verify_proof
from state.sns import NAME_PREFIX
from tests.conftest import extend
from tests.helpers import served_node
from tests.servers import FakeServer, serve_node

Tamper = Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]]


class LocalSource(RpcSource):
    """A node's JSON-RPC answered in-process (same handler as over HTTP), optionally lying."""

    def __init__(self, node: Any, url: str = "local", tamper: Tamper | None = None) -> None:
        super().__init__(url)
        self.node = node
        self.tamper = tamper
        self.calls: list[str] = []

    def _post(self, payload: object) -> Any:
        calls = payload if isinstance(payload, list) else [payload]
        self.calls.extend(call["method"] for call in calls)  # type: ignore[index]
        answer = json.loads(json.dumps(handle_body(self.node, json.dumps(payload).encode())))
        if self.tamper is not None:
            replies = answer if isinstance(answer, list) else [answer]
            for call, reply in zip(calls, replies, strict=True):
                if "result" in reply:
                    reply["result"] = self.tamper(call["method"], call["params"], reply["result"])  # type: ignore[index]
        return answer


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, devnet_dir: Path) -> Iterator[Chain]:
    home, _ = Home.init(
        tmp_path_factory.mktemp("light") / "home", devnet_dir / "genesis.json", NodeConfig(sync_writes=False)
    )
    with home.open_chain() as opened:
        extend(opened, home, 45, per_block=30)
        yield opened


@pytest.fixture
def node(chain: Chain) -> Any:
    return served_node(
        chain=chain,
        ledger=ChainLedger(chain),
        core=SimpleNamespace(node_key=bytes(32), mempool=Mempool(chain.state.chain_id)),
    )


@pytest.fixture
def trusted(devnet_dir: Path) -> Trusted:
    return Trusted.from_genesis(load_genesis(devnet_dir / "genesis.json"))


def call(node: Any, method: str, **params: Any) -> dict[str, Any]:
    reply: dict[str, Any] = handle_body(
        node, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    )
    return reply


def some_key(chain: Chain, prefix: bytes) -> bytes:
    return next(key for key, _ in chain.state.prefixed(prefix))


def test_the_client_walks_checkpoints_and_proves_values_and_absence(
    chain: Chain, node: Any, trusted: Trusted
) -> None:
    assert chain.final_height == 44
    source = LocalSource(node)
    client = VerifyingClient(trusted, [source])
    account = some_key(chain, b"acct/")
    proven = client.query("account", account)
    assert proven.height == 44 and client.trusted.height == 44 and client.checkpoints_walked == 11
    assert source.calls.count("get_checkpoint") == 11 and proven.sources == ["local"]
    expected, _ = chain.history.prove(chain.state, state_key("account", account), 44)
    assert proven.value == expected and decode_value("account", proven.value).balance > 0
    node_key = some_key(chain, b"node/")
    assert decode_value("node", client.query("node", node_key).value).bls_key  # type: ignore[arg-type]
    name = some_key(chain, NAME_PREFIX)
    assert client.query("sns", name).value is not None
    assert client.query("account", b"\x77" * 32).value is None  # absence, proven
    assert client.checkpoints_walked == 11  # nothing walked twice


def test_the_trusted_checkpoint_is_kept_between_runs(
    tmp_path: Path, node: Any, trusted: Trusted, chain: Chain, devnet_genesis: Genesis
) -> None:
    client = VerifyingClient(trusted, [LocalSource(node)])
    client.query("account", some_key(chain, b"acct/"))
    anchor = genesis_anchor(devnet_genesis.hash)
    kept = TrustFile(tmp_path / "trust.json")
    kept.keep(anchor, client.trusted)
    kept.save()
    loaded = TrustFile.load(tmp_path / "trust.json").get(anchor)
    assert loaded is not None and loaded == client.trusted
    again = VerifyingClient(loaded, [LocalSource(node)])
    assert again.trusted.height == 44
    assert again.query("account", some_key(chain, b"acct/")).height == 44 and again.checkpoints_walked == 0
    (tmp_path / "bad.json").write_text('{"chain_id": "x"}')
    with pytest.raises(Untrusted, match="not a trusted checkpoint file"):
        TrustFile.load(tmp_path / "bad.json")


def test_the_checkpoint_interval_comes_from_the_genesis_or_the_node_and_is_kept(
    tmp_path: Path, node: Any, chain: Chain, trusted: Trusted
) -> None:
    """From a genesis, the interval is the genesis's; from a checkpoint the user names, it is
    the node's ``get_info`` (a bad one is a lie); a trust file keeps it, and an entry written
    before it was a parameter reads as 4, what every chain used then."""
    assert trusted.checkpoint_interval == chain.genesis.params.checkpoint_interval == 4
    named = chain.store.get_header(40)
    assert named is not None
    source = LocalSource(node)
    start = Trusted.from_checkpoint(chain.genesis.chain_id, 40, compute_block_hash(named), source)
    assert (start.height, start.checkpoint_interval) == (40, 4) and source.calls[:1] == ["get_info"]
    client = VerifyingClient(start, [LocalSource(node)])
    assert client.query("account", some_key(chain, b"acct/")).height == 44 and client.checkpoints_walked == 1
    for bad in (0, "4", None):
        liar = LocalSource(
            node,
            tamper=lambda method, _p, r, bad=bad: (
                {**r, "checkpoint_interval": bad} if method == "get_info" else r
            ),
        )
        with pytest.raises(Lied, match="checkpoint_interval is not a positive integer"):
            Trusted.from_checkpoint(chain.genesis.chain_id, 40, compute_block_hash(named), liar)
    legacy = start.to_json()
    del legacy["checkpoint_interval"]
    assert Trusted.from_json(legacy) == start
    with pytest.raises(Untrusted, match="must be a checkpoint header"):
        Trusted.from_json({**legacy, "checkpoint_interval": 3})
    with pytest.raises(Untrusted, match="at least 1 block"):
        Trusted.from_json({**legacy, "checkpoint_interval": 0})


def test_a_trust_file_of_another_genesis_with_the_same_chain_id_is_kept_not_used(
    tmp_path: Path, node: Any, chain: Chain, devnet_dir: Path, devnet_genesis: Genesis,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Every testnet is ``appchain-devnet``: a trust file kept from another one must not be the
    start of a query given this chain's genesis, or every honest node is reported as a liar
    (issue 18, point 4). The other chain's entry is kept as it was."""
    other = write_devnet(tmp_path / "other" / "genesis.json", nodes=12, seed="another testnet", users=1)
    assert other.chain_id == devnet_genesis.chain_id and other.hash != devnet_genesis.hash
    theirs = Trusted.from_genesis(other)
    trust = tmp_path / "light" / "appchain-devnet.json"
    trust.parent.mkdir()
    trust.write_text(json.dumps(theirs.to_json()))  # the first format: one checkpoint, no genesis
    account = some_key(chain, b"acct/").hex()
    genesis = str(devnet_dir / "genesis.json")
    with FakeServer(serve_node(node)) as server:
        query = ["query", "balance", account, "--rpc", server.url, "--trust-file", str(trust), "--json"]
        assert main([*query, "--genesis", genesis]) == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["height"] == 44
        kept = TrustFile.load(trust)
        ours = kept.get(genesis_anchor(devnet_genesis.hash))
        assert ours is not None and ours.height == 44
        assert kept.get(checkpoint_anchor(0, theirs.block_hash)) == theirs
        assert main([*query, "--genesis", genesis]) == 0  # from the kept checkpoint: nothing walked
        assert json.loads(capsys.readouterr().out)["height"] == 44
        # the chain id alone cannot say which of the two is meant
        assert main([*query, "--chain-id", "appchain-devnet"]) == 1
        assert "keeps 2 chains named 'appchain-devnet'" in capsys.readouterr().err
        # and the other genesis, against this chain's nodes, is what finds them lying
        other_genesis = str(tmp_path / "other" / "genesis.json")
        assert main([*query, "--genesis", other_genesis]) == 6
        assert "lied" in capsys.readouterr().err
    assert TrustFile.load(trust).get(checkpoint_anchor(0, theirs.block_hash)) == theirs


def _replace_blob(result: dict[str, Any], field: str, kind: type, **changes: Any) -> dict[str, Any]:
    value = decode(bytes.fromhex(result[field]), kind)
    result[field] = encode(msgspec.structs.replace(value, **changes)).hex()
    return result


def _flip(hex_text: str) -> str:
    raw = bytearray(bytes.fromhex(hex_text))
    raw[len(raw) // 2] ^= 1
    return bytes(raw).hex()


def _only(method: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Tamper:
    return lambda m, params, result: change(result) if m == method else result


def _at(height: int, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Tamper:
    return lambda m, params, result: (
        change(result) if m == "get_checkpoint" and params["height"] == height else result
    )


def _fewer_signers(result: dict[str, Any]) -> dict[str, Any]:
    certificate = decode(bytes.fromhex(result["certificate"]), CheckpointCertificate)
    size = len(certificate.signers) * 8
    kept = decode_bitset(certificate.signers, size)[-7:]  # the last 7 signers only
    signers = encode_bitset(kept, size)
    result["certificate"] = encode(msgspec.structs.replace(certificate, signers=signers)).hex()
    return result


def _value_flip(result: dict[str, Any]) -> dict[str, Any]:
    result["value"] = _flip(result["value"])
    return result


def _absent(result: dict[str, Any]) -> dict[str, Any]:
    result["value"] = None
    return result


def _sibling_flip(result: dict[str, Any]) -> dict[str, Any]:
    proof = decode(bytes.fromhex(result["proof"]), Proof)
    siblings = list(proof.siblings)
    siblings[0] = bytes(32) if siblings[0] != bytes(32) else b"\x01" * 32
    result["proof"] = encode(msgspec.structs.replace(proof, siblings=tuple(siblings))).hex()
    return result


def _state_root(result: dict[str, Any]) -> dict[str, Any]:
    return _replace_blob(result, "header", Header, state_root=b"\x42" * 32)


def _other_height(result: dict[str, Any]) -> dict[str, Any]:
    result["height"] = result["height"] - 4
    return result


def _checkpoint_root(result: dict[str, Any]) -> dict[str, Any]:
    return _replace_blob(result, "header", Header, state_root=b"\x42" * 32)


def _signature(result: dict[str, Any]) -> dict[str, Any]:
    result["certificate"] = _flip(result["certificate"])
    return result


def _wrong_quorum(result: dict[str, Any]) -> dict[str, Any]:
    result["next_quorum"] = list(reversed(result["next_quorum"]))
    return result


def _no_certificate(result: dict[str, Any]) -> dict[str, Any]:
    result["certificate"] = None
    return result


def _not_hex(result: dict[str, Any]) -> dict[str, Any]:
    result["proof"] = "zz"
    return result


LIES: list[tuple[str, Tamper, str]] = [
    ("tampered value", _only("get_state_proof", _value_flip), "does not match the trusted state root"),
    (
        "a present value claimed absent",
        _only("get_state_proof", _absent),
        "does not match the trusted state root",
    ),
    ("tampered proof", _only("get_state_proof", _sibling_flip), "does not match the trusted state root"),
    ("tampered header", _only("get_state_proof", _state_root), "is not the certified checkpoint 44"),
    ("an answer for another height", _only("get_state_proof", _other_height), "another key or height"),
    ("a proof that is not hex", _only("get_state_proof", _not_hex), "'proof' is not hex"),
    ("tampered checkpoint header", _at(20, _checkpoint_root), "certificate is for another block"),
    ("tampered certificate", _at(12, _signature), "checkpoint 12"),
    ("wrong quorum", _at(28, _wrong_quorum), "checkpoint 28: the next quorum.s keys do not match"),
    ("too few signers", _at(36, _fewer_signers), r"checkpoint 36: 7 signers, \d+ needed"),
    ("no certificate", _at(8, _no_certificate), "came without a certificate"),
]


@pytest.mark.parametrize(
    ("tamper", "reason"), [(t, r) for _, t, r in LIES], ids=[name for name, _, _ in LIES]
)
def test_a_lying_node_is_caught(
    node: Any, trusted: Trusted, chain: Chain, tamper: Tamper, reason: str
) -> None:
    client = VerifyingClient(trusted, [LocalSource(node, "http://liar", tamper)])
    with pytest.raises(Lied, match=reason) as caught:
        client.query("account", some_key(chain, b"acct/"))
    assert caught.value.url == "http://liar" and caught.value.evidence["lied"][0]["url"] == "http://liar"


def test_a_conflict_between_nodes_is_reported_with_both_answers(
    node: Any, trusted: Trusted, chain: Chain
) -> None:
    honest = LocalSource(node, "http://honest")
    liar = LocalSource(node, "http://liar", _only("get_state_proof", _value_flip))
    client = VerifyingClient(trusted, [honest, liar])
    with pytest.raises(Lied) as caught:
        client.query("account", some_key(chain, b"acct/"))
    evidence = caught.value.evidence
    assert [v["url"] for v in evidence["verified"]] == ["http://honest"]
    assert [lie["url"] for lie in evidence["lied"]] == ["http://liar"]
    good, bad = evidence["verified"][0]["answer"], evidence["lied"][0]["answer"]
    assert good["proof"] == bad["proof"] and good["value"] != bad["value"]  # both answers, both proofs
    assert client.trusted.height == 44  # what verified is still trusted


def test_the_proof_methods_answer_errors_for_heights_they_cannot_prove(node: Any, chain: Chain) -> None:
    account = some_key(chain, b"acct/").hex()
    cases = [
        ({"namespace": "account", "key": account, "height": 45}, -32003, "not final"),
        ({"namespace": "nope", "key": account}, -32602, "unknown namespace"),
        ({"namespace": "account", "key": "abcd"}, -32602, "is 32 bytes"),
        ({"key": 7}, -32602, "Expected `str`, got `int` - at `$.key`"),
        ({"key": "zz"}, -32602, "key must be hex"),
        ({"namespace": "account", "key": account, "height": -1}, -32602, "Expected `int` >= 0"),
        (
            {"namespace": "account", "key": account, "height": 2**64},
            -32602,
            "Expected `int` <= 9223372036854775807",
        ),
        ({"key": ""}, -32602, "a state key is 1 to 256 bytes"),
        ({"key": "00" * 257}, -32602, "a state key is 1 to 256 bytes"),
        ({"namespace": 5, "key": account}, -32602, "Expected `str | null`, got `int` - at `$.namespace`"),
    ]
    for params, code, message in cases:
        error = call(node, "get_state_proof", **params)["error"]
        assert error["code"] == code and message in error["message"]
    for params, code, message in [
        ({"height": 42}, -32602, "not a checkpoint height"),
        ({"height": 48}, -32003, "not final"),
    ]:
        error = call(node, "get_checkpoint", **params)["error"]
        assert error["code"] == code and message in error["message"]
    # a final checkpoint whose certificate, or whose next quorum (in its delta), the store lacks
    store = chain.store
    for missing, message in [
        ("get_certificate", "this node holds no certificate for checkpoint 40"),
        (
            "get_checkpoint_quorum",
            "this node holds no record of the quorum that block 40 chose for the next checkpoint",
        ),
    ]:
        names = ("get_header", "get_certificate", "get_checkpoint_quorum")
        parts = {name: getattr(store, name) for name in names}
        parts[missing] = lambda height, *interval: None
        lacking = served_node(
            chain=SimpleNamespace(store=SimpleNamespace(**parts), history=chain.history, base_height=0),
            ledger=node.ledger,
            core=node.core,
        )
        error = call(lacking, "get_checkpoint", height=40)["error"]
        assert (error["code"], error["message"]) == (-32001, message)
    # a value below the final height comes with the headers that link it to the next checkpoint
    result = call(node, "get_state_proof", namespace="account", key=account, height=41)["result"]
    assert result["checkpoint_height"] == 44 and len(result["links"]) == 3


def test_list_parameters_are_refused_when_malformed_or_too_long(node: Any) -> None:
    heights = "invalid params: Expected `array | null`, got `int` - at `$.heights`"
    too_many = "invalid params: Expected `array` of length <= 1000 - at `$.heights`"
    entries = "invalid params: Expected `array` of length >= 1 - at `$.entries`"
    for method, params, message in [
        ("get_block_header_by_height", {"heights": 5}, heights),
        ("get_block_header_by_height", {"heights": list(range(1001))}, too_many),
        (
            "get_block_header_by_height",
            {"heights": [1, "x"]},
            "Expected `int`, got `str` - at `$.heights[1]`",
        ),
        ("get_block_header_by_height", {}, "invalid params: give height or heights"),
        ("ons_owners_to_names", {"entries": []}, entries),
        ("ons_owners_to_names", {"entries": ["00" * 32] * 257}, "length <= 256 - at `$.entries`"),
    ]:
        error = call(node, method, **params)["error"]
        assert error["code"] == -32602 and message in error["message"], (method, params, error)


def test_a_height_outside_the_proof_window_is_refused_not_answered_from_another(
    chain: Chain, node: Any, trusted: Trusted
) -> None:
    window = StateHistory(6)
    window.start(chain.state)
    narrow = served_node(
        chain=SimpleNamespace(store=chain.store, history=window),
        ledger=node.ledger,
        core=node.core,
    )
    error = call(
        narrow, "get_state_proof", namespace="account", key=some_key(chain, b"acct/").hex(), height=44
    )["error"]
    assert error["code"] == -32004 and "outside the kept proof window (heights 45 to 45)" in error["message"]
    # the light client walking a source that cannot prove: a clear error, no value
    client = VerifyingClient(trusted, [LocalSource(narrow)])
    with pytest.raises(Exception, match="outside the kept proof window"):
        client.query("account", some_key(chain, b"acct/"))


def test_history_gives_each_heights_value(devnet_dir: Path, tmp_path: Path) -> None:
    home, _ = Home.init(tmp_path / "home", devnet_dir / "genesis.json", NodeConfig(sync_writes=False))
    with Chain.open(
        home.db_path, home.load_genesis(), snapshot_interval=4, sync=False, proof_window=8
    ) as chain:
        roots, values = {}, {}
        account = some_key(chain, b"acct/")
        key = state_key("account", account)
        for _ in range(15):
            extend(chain, home, 1, seed=f"h{chain.height}")
            roots[chain.height] = chain.state.root
            values[chain.height] = chain.state.get(key)
        assert chain.history.bounds == (8, 15)
        for height in range(8, 16):
            value, proof = chain.history.prove(chain.state, key, height)
            assert value == values[height]
            assert verify_proof(roots[height], key, value, proof)
        chain.rollback(13)
        assert chain.history.bounds == (8, 13)
    # reopened: the window starts at the newest snapshot (12), then the replayed block 13
    with Chain.open(
        home.db_path, home.load_genesis(), snapshot_interval=4, sync=False, proof_window=8
    ) as chain:
        assert chain.history.bounds == (12, 13)
        assert chain.history.prove(chain.state, key, 12)[0] == values[12]


def test_every_block_of_a_valid_genesis_links_to_a_checkpoint_within_reach() -> None:
    """The genesis check bounds ``checkpoint_interval`` by what the client links."""
    from appchain.client.lightclient import MAX_LINKED
    from genesis.document import MAX_CHECKPOINT_INTERVAL

    assert MAX_CHECKPOINT_INTERVAL <= MAX_LINKED
