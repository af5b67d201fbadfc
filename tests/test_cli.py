"""The appchain command line: outputs, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from appchain.cli import node as cli
from appchain.cli.main import main
from appchain.home.exchange import ExportedBlock
from state.encoding import decode, encode
from state.events import Transfer
from state.types import Atomic
from tests.exports import frames_of, write_frames


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def net(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, _ = run(
        capsys,
        "genesis",
        "new",
        "--nodes",
        "12",
        "--seed",
        "cli",
        "--users",
        "4",
        "--out",
        str(tmp_path / "net" / "genesis.json"),
    )
    assert code == 0
    return tmp_path / "net" / "genesis.json"


@pytest.fixture
def home(tmp_path: Path, net: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    home = tmp_path / "node1"
    assert run(capsys, "init", "--home", str(home), "--genesis", str(net), "--snapshot-interval", "4")[0] == 0
    assert (
        run(
            capsys,
            "dev-chain",
            "--home",
            str(home),
            "--blocks",
            "10",
            "--seed",
            "x",
            "--events-per-block",
            "15",
        )[0]
        == 0
    )
    return home


def test_genesis_new_is_reproducible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        assert (
            run(
                capsys,
                "genesis",
                "new",
                "--nodes",
                "3",
                "--seed",
                "same",
                "--out",
                str(tmp_path / name / "g.json"),
            )[0]
            == 0
        )
    assert (tmp_path / "a" / "g.json").read_bytes() == (tmp_path / "b" / "g.json").read_bytes()
    assert (tmp_path / "a" / "keys" / "node-2.json").read_bytes() == (
        tmp_path / "b" / "keys" / "node-2.json"
    ).read_bytes()


def test_genesis_validate(net: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "genesis", "validate", str(net))
    assert code == 0 and len(out.strip()) == 64
    doc = json.loads(net.read_text())
    doc["allocations"][0]["amount"] = "-3"
    doc["params"]["surprise"] = 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, out, err = run(capsys, "genesis", "validate", str(bad))
    assert code == 1 and out == ""
    assert "$.allocations[0].amount: must not be negative" in err
    assert "$.params.surprise: unknown field" in err


def test_replay_json_and_status(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "replay", "--home", str(home), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["height"] == 10 and len(result["state_root"]) == 64
    assert result["events"] == 150
    supply = result["supply"]
    assert supply["conserved"] is True
    parts = ("balances", "stakes", "locked_stakes", "pool", "accrued_rewards")
    assert sum(int(supply[p]) for p in parts) == int(supply["genesis"]) == int(supply["total"])
    code, out, _ = run(capsys, "replay", "--home", str(home), "--json", "--verify-signatures")
    assert json.loads(out)["state_root"] == result["state_root"]
    code, out, _ = run(capsys, "status", "--home", str(home), "--json")
    status = json.loads(out)
    assert status["height"] == 10 and status["state_root"] == result["state_root"]
    assert status["snapshots"] == [4, 8]


def test_export_import_reaches_the_same_roots(
    home: Path, net: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "chain.events"
    assert run(capsys, "export-events", "--home", str(home), "--out", str(export))[0] == 0
    fresh = tmp_path / "node2"
    assert run(capsys, "init", "--home", str(fresh), "--genesis", str(net))[0] == 0
    code, _, _ = run(capsys, "import-events", "--home", str(fresh), "--in", str(export))
    assert code == 0
    original = json.loads(run(capsys, "replay", "--home", str(home), "--json")[1])
    rebuilt = json.loads(run(capsys, "replay", "--home", str(fresh), "--json")[1])
    assert rebuilt["state_root"] == original["state_root"]
    assert rebuilt["block_hash"] == original["block_hash"]


@pytest.mark.parametrize("trust", [False, True])
def test_a_tampered_export_is_refused_at_its_height(
    home: Path, net: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], trust: bool
) -> None:
    export = tmp_path / "chain.events"
    run(capsys, "export-events", "--home", str(home), "--out", str(export))
    frames = frames_of(export)
    exported = decode(frames[1 + 7], ExportedBlock)  # frame 0 is the header; block 7 follows
    block = exported.block
    tx = block.events[3]
    assert isinstance(tx, Transfer)
    changed = msgspec.structs.replace(tx, amount=Atomic(tx.amount + 1))
    tampered = msgspec.structs.replace(block, events=(*block.events[:3], changed, *block.events[4:]))
    frames[1 + 7] = encode(ExportedBlock(tampered, exported.certificate))
    write_frames(export, frames)
    fresh = tmp_path / "node3"
    run(capsys, "init", "--home", str(fresh), "--genesis", str(net))
    args = ["import-events", "--home", str(fresh), "--in", str(export)] + (
        ["--trust-signatures"] if trust else []
    )
    code, _, err = run(capsys, *args)
    assert code == 1
    last = err.splitlines()[-1]  # progress lines come first on stderr
    assert last.startswith("error: import refused at height 7: block 7: events root")
    assert "Traceback" not in err
    # the import was undone: the home is back at genesis and opens cleanly
    code, out, _ = run(capsys, "status", "--home", str(fresh), "--json")
    assert code == 0 and json.loads(out)["height"] == 0


def test_truncated_or_foreign_exports_are_refused(
    home: Path, net: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "chain.events"
    run(capsys, "export-events", "--home", str(home), "--out", str(export))
    fresh = tmp_path / "node4"
    run(capsys, "init", "--home", str(fresh), "--genesis", str(net))
    (tmp_path / "short.events").write_bytes(export.read_bytes()[:-10])
    code, _, err = run(capsys, "import-events", "--home", str(fresh), "--in", str(tmp_path / "short.events"))
    assert code == 1 and "truncated" in err
    (tmp_path / "junk.events").write_bytes(b"hello")
    code, _, err = run(capsys, "import-events", "--home", str(fresh), "--in", str(tmp_path / "junk.events"))
    assert code == 1 and "not an appchain event export" in err
    other = tmp_path / "other"
    run(capsys, "genesis", "new", "--nodes", "2", "--seed", "other", "--out", str(other / "g.json"))
    run(capsys, "init", "--home", str(other / "home"), "--genesis", str(other / "g.json"))
    code, _, err = run(capsys, "import-events", "--home", str(other / "home"), "--in", str(export))
    assert code == 1 and "belongs to genesis" in err


def test_user_errors_are_one_line(
    tmp_path: Path, net: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        ["replay", "--home", str(tmp_path / "nowhere")],
        ["init", "--home", str(home), "--genesis", str(net)],
        ["init", "--home", str(tmp_path / "x"), "--genesis", str(tmp_path / "missing.json")],
        ["import-events", "--home", str(home), "--in", str(tmp_path / "missing.events")],
        ["dev-chain", "--home", str(tmp_path / "nowhere"), "--blocks", "1", "--seed", "s"],
    ]
    for args in cases:
        code, _, err = run(capsys, *args)
        assert code == 1, args
        assert err.startswith("error: ") and err.count("\n") == 1, (args, err)


def test_corruption_is_fatal_with_exit_3(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import plyvel

    db = plyvel.DB(str(home / "data" / "chain"))
    db.put(b"e/" + (9).to_bytes(8, "big"), b"\xc1")  # above the newest snapshot (8)
    db.close()
    code, _, err = run(capsys, "status", "--home", str(home))
    assert code == 3
    assert err.startswith("fatal: ") and err.count("\n") == 1


def test_the_console_script_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "appchain.cli", "genesis", "validate", str(tmp_path / "absent.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_home_in_use_is_a_clear_error(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import plyvel

    monkeypatch.setattr(cli, "STATUS_DATABASE_WAIT", 0.2)  # status waits this long for another reader
    holder = plyvel.DB(str(home / "data" / "chain"))  # another process would hold this lock
    try:
        code, _, err = run(capsys, "status", "--home", str(home))
    finally:
        holder.close()
    assert code == 1
    assert err == f"error: the database at {home / 'data' / 'chain'} is in use by another process\n"
