"""``appchain keys``, what ``tx`` and ``query`` do with bad input before any node is asked, and
``tx`` against a running node."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appchain.cli.main import main
from appchain.client.wallet import WalletError, format_amount, parse_amount
from appchain.node.admin import call as admin_call
from tests.servers import RunningNode


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_account_keys_new_show_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "me.key"
    code, out, _ = run(capsys, "keys", "new", "--out", str(key), "--json")
    shown = json.loads(out)
    assert code == 0 and len(shown["account"]) == 64 and "seed" not in shown
    assert key.stat().st_mode & 0o777 == 0o600
    code, out, _ = run(capsys, "keys", "show", str(key))
    assert code == 0 and shown["account"] in out and key.read_text().strip() not in out  # never the secret
    code, out, _ = run(capsys, "keys", "show", str(key), "--secret", "--json")
    assert json.loads(out)["seed"] == key.read_text().strip()
    code, _, err = run(capsys, "keys", "new", "--out", str(key))
    assert code == 1 and "already exists" in err
    # import from standard input: the same seed gives the same account
    copy = tmp_path / "copy.key"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(key.read_text()))
        code, out, _ = run(capsys, "keys", "import", "--out", str(copy), "--json")
    assert code == 0 and json.loads(out)["account"] == shown["account"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO("not hex\n"))
        code, _, err = run(capsys, "keys", "import", "--out", str(tmp_path / "x.key"))
    assert code == 1 and "standard input must hold" in err and not (tmp_path / "x.key").exists()
    key.chmod(0o644)
    code, _, err = run(capsys, "keys", "show", str(key))
    assert code == 1 and "readable by others" in err


def test_node_keys_in_a_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "node"
    code, out, _ = run(capsys, "keys", "new", "--node", "--home", str(home), "--json")
    shown = json.loads(out)
    assert code == 0 and {"node_key", "pubkey_bls", "pubkey_x25519"} <= set(shown)
    assert len(bytes.fromhex(shown["pubkey_bls"])) == 48 and "bls_seed" not in shown
    for name in ("node_ed25519.key", "node_bls.key"):
        assert (home / "keys" / name).stat().st_mode & 0o777 == 0o600
    code, out, _ = run(capsys, "keys", "show", "--node", "--home", str(home), "--secret", "--json")
    assert json.loads(out)["node_seed"] == (home / "keys" / "node_ed25519.key").read_text().strip()
    code, _, err = run(capsys, "keys", "new", "--node", "--home", str(home))
    assert code == 1 and "never overwritten" in err


def test_amounts_are_exact() -> None:
    assert parse_amount("12.5") == 12_500_000_000 and parse_amount("0.000000001") == 1
    assert format_amount(12_500_000_000) == "12.5 SESH" and format_amount(10**9) == "1 SESH"
    for bad in ("0", "-1", "1.0000000001", "abc", "nan", "inf", str(2**64)):
        with pytest.raises(WalletError):
            parse_amount(bad)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tx_and_query_refuse_bad_input_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], devnet_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "me.key"
    run(capsys, "keys", "new", "--out", str(key))
    node_home = tmp_path / "node"
    run(capsys, "keys", "new", "--node", "--home", str(node_home))
    url = f"http://127.0.0.1:{_closed_port()}"
    genesis, trust = str(devnet_dir / "genesis.json"), str(tmp_path / "t.json")
    one_seed = "00" * 32 + "\n"  # standard input of every case: one line, a valid account seed
    cases = [
        (["tx", "transfer", "--key", str(key), "--rpc", url, "--to", "00" * 32, "--amount", "1.5.3"], "not an amount"),
        (["tx", "transfer", "--key", str(key), "--rpc", url, "--to", "zz", "--amount", "1", "--chain-id", "c",
          "--nonce", "1"], "--to must be 64 hex digits"),
        (["tx", "claim", "--key", str(tmp_path / "none.key"), "--rpc", url], "not found"),
        (["tx", "claim", "--key", str(key), "--rpc", url, "--no-wait"], "cannot reach the node"),
        (["tx", "claim", "--key", str(key), "--rpc", url], "tx: give --genesis FILE"),
        (["tx", "claim", "--key", str(key), "--rpc", url, "--genesis", genesis, "--trust-file", trust],
         "cannot reach the node"),
        (["tx", "sns-buy", "--key", str(key), "--rpc", url, "--chain-id", "c", "--nonce", "1", "--name=-bad",
          "--session-id", "05" + "00" * 32], "invalid name"),
        (["query", "balance", "00" * 32, "--rpc", url], "give --genesis FILE"),
        (["query", "balance", "00" * 32, "--rpc", url, "--chain-id", "c", "--trust-file", str(tmp_path / "t.json")],
         "no trusted checkpoint kept"),
        (["query", "balance", "00" * 32, "--rpc", url, "--chain-id", "c", "--checkpoint", "4"], "HEIGHT:HASH"),
        (["msg", "store", "--key", str(key), "--rpc", url], "give --data TEXT or --file FILE"),
        (["msg", "store", "--key", str(key), "--rpc", url, "--data", "hi"], "cannot reach the node"),
        (["msg", "store", "--key", str(key), "--rpc", url, "--file", str(tmp_path / "none")], "No such file"),
        (["msg", "retrieve", "--key", str(tmp_path / "none.key"), "--rpc", url], "not found"),
        (["keys", "show"], "keys show: name the key file (or --node --home DIR)"),
        (["keys", "new"], "name the key file to write with --out FILE (or --node --home DIR)"),
        (["keys", "import", "--node", "--home", str(tmp_path / "other")],
         "keys import: standard input must hold two lines: the node key seed, then the BLS seed (64 hex digits each)"),
        (["tx", "sns-buy", "--key", str(key), "--rpc", url, "--chain-id", "c", "--nonce", "1", "--name=good",
          "--session-id", "zz"], "--session-id must be 66 hex digits starting with 05"),
        (["tx", "register", "--key", str(key), "--rpc", url, "--chain-id", "c", "--nonce", "1",
          "--node-home", str(node_home), "--amount", "100", "--reserve", "abc"], "--reserve 'abc': ACCOUNT=AMOUNT"),
        (["query", "balance", "zz", "--rpc", url, "--genesis", genesis, "--trust-file", trust],
         "the key must be 64 hex digits, not 'zz'"),
        (["query", "balance", "00" * 32, "--rpc", url, "--chain-id", "c", "--checkpoint", "4:zz"],
         "the checkpoint hash must be 64 hex digits, not 'zz'"),
    ]  # fmt: skip
    for argv, message in cases:
        monkeypatch.setattr("sys.stdin", io.StringIO(one_seed))
        code, _, err = run(capsys, *argv)
        assert code == 1 and message in err and err.count("\n") == 1, (argv, err)


# -- against a running node ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    node = RunningNode(tmp_path_factory.mktemp("client") / "net")
    try:
        yield node
    finally:
        node.stop()


def test_back_to_back_transactions_without_waiting_are_both_accepted(
    running_node: RunningNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wallet signs with the account's nonce counting its transactions in the mempool: with
    the tip's nonce the second transaction reused the first's and was refused (issue 18, 3)."""
    key = str(running_node.user_key(tmp_path / "user.key", index=1))
    account = running_node.user(1).public_key.hex()
    sent = []
    for amount in ("1", "2"):
        code, out, err = run(capsys, "tx", "transfer", "--key", key, "--rpc", running_node.url,
                             "--to", "42" * 32, "--amount", amount, "--no-wait", "--json")  # fmt: skip
        assert code == 0, err
        sent.append(json.loads(out))
    assert [s["nonce"] for s in sent] == [1, 2] and sent[0]["tx_hash"] != sent[1]["tx_hash"]
    entry = running_node.call("get_accounts", addresses=[account])["accounts"][account]
    assert entry["nonce"] == 0 and entry["pending_nonce"] == 2  # no blocks: both wait in the mempool
    status = admin_call(("127.0.0.1", running_node.member.admin_port), "status")
    assert status["mempool"] >= 2
