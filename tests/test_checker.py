"""The history checker finds each thing that must never happen, and nothing in a clean run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appchain.lab.checker import check_histories, history_path
from appchain.node.journal import Journal, JournaledSlots
from consensus.guard import DoubleSign, GuardedSigner, MemorySlotRecord
from state.crypto import ed25519


def journal(home: Path) -> Journal:
    return Journal(history_path(home))


def clean_run(tmp_path: Path, nodes: int = 3) -> list[Path]:
    homes = [tmp_path / f"node{i}" for i in range(nodes)]
    for home in homes:
        log = journal(home)
        for height in (4, 8, 12):
            log.final(height, bytes([height]) * 32, bytes([height + 1]) * 32)
        log.signed(5, 0, 1, b"\x01" * 32)
        log.close()
    return homes


def test_a_clean_run_passes(tmp_path: Path) -> None:
    report = check_histories(clean_run(tmp_path))
    assert report.ok and report.final_records == 9 and report.signatures == 3
    assert report.highest_final == 12


def test_two_final_blocks_at_one_height_is_a_safety_violation(tmp_path: Path) -> None:
    homes = clean_run(tmp_path)
    log = journal(homes[1])
    log.final(16, b"\xaa" * 32, b"\x01" * 32)
    log.close()
    log = journal(homes[2])
    log.final(16, b"\xbb" * 32, b"\x01" * 32)
    log.close()
    report = check_histories(homes)
    assert not report.ok
    assert report.safety_violations == [
        {"height": 16, "blocks": {"aa" * 32: ["node1"], "bb" * 32: ["node2"]}}
    ]


def test_a_second_payload_for_one_slot_is_a_double_sign(tmp_path: Path) -> None:
    homes = clean_run(tmp_path)
    log = journal(homes[0])
    log.signed(5, 0, 1, b"\x02" * 32)
    log.signed(5, 1, 1, b"\x03" * 32)  # another round: a different slot, allowed
    log.close()
    report = check_histories(homes)
    assert [d["slot"] for d in report.double_signs] == [[5, 0, 1]]
    assert report.double_signs[0]["node"] == "node0"


def test_one_block_with_two_roots_diverges(tmp_path: Path) -> None:
    homes = clean_run(tmp_path)
    log = journal(homes[2])
    log.final(12, bytes([12]) * 32, b"\xee" * 32)
    log.close()
    report = check_histories(homes)
    assert [d["height"] for d in report.diverging_roots] == [12] and not report.safety_violations


def test_a_torn_line_is_reported_not_skipped(tmp_path: Path) -> None:
    homes = clean_run(tmp_path)
    with history_path(homes[0]).open("a") as out:
        out.write('{"at": 1, "final": 20, "hash": ')
    report = check_histories(homes)
    assert report.bad_lines == [f"{history_path(homes[0])}:5"] and not report.ok
    assert report.bad_line_reasons[0].startswith("not valid JSON")


def test_lines_that_are_not_utf8_nest_deeply_or_are_not_records_are_reported_with_why(tmp_path: Path) -> None:
    homes = clean_run(tmp_path)
    with history_path(homes[1]).open("ab") as out:
        out.write(b'{"at": 1, "hash": "\xff"}\n' + b"[" * 300_000 + b"\n[1, 2]\n")
    report = check_histories(homes)
    where = str(history_path(homes[1]))
    assert report.bad_lines == [f"{where}:5", f"{where}:6", f"{where}:7"]
    assert report.bad_line_reasons == [
        "not valid JSON: not UTF-8 text",
        "not valid JSON: nested deeper than 64 levels",
        "not a history record",
    ]
    assert report.final_records == 9 and report.signatures == 3 and not report.ok


def test_the_longest_stall_is_between_the_slowest_pair_of_new_final_heights(tmp_path: Path) -> None:
    home = tmp_path / "node0"
    history_path(home).parent.mkdir(parents=True)
    lines = [(4, 100.0), (8, 101.0), (12, 109.5), (16, 110.0), (12, 111.0)]
    history_path(home).write_text(
        "".join(json.dumps({"at": at, "final": h, "hash": "00", "root": "11"}) + "\n" for h, at in lines)
    )
    report = check_histories([home])
    assert report.longest_stall_between == (8, 12) and report.longest_stall_seconds == 8.5


def test_the_journaled_guard_records_what_it_signs_and_nothing_it_refuses(tmp_path: Path) -> None:
    home = tmp_path / "node0"
    log = journal(home)
    signer = GuardedSigner(ed25519.SigningKey(b"\x05" * 32), JournaledSlots(MemorySlotRecord(), log))
    signer.sign(7, 0, 2, b"payload")
    signer.sign(7, 0, 2, b"payload")  # the same again: allowed, recorded again, no double sign
    with pytest.raises(DoubleSign):
        signer.sign(7, 0, 2, b"another")
    log.close()
    report = check_histories([home])
    assert report.signatures == 2 and report.ok


def test_the_command_prints_the_numbers_and_fails_on_a_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from appchain.cli.main import main

    homes = clean_run(tmp_path)
    assert main(["check-histories", *map(str, homes)]) == 0
    out = capsys.readouterr().out
    assert "3 nodes, 9 final records up to height 12, 3 signatures" in out
    assert "safety violations: 0, double signs: 0, diverging roots: 0" in out
    log = journal(homes[0])
    log.final(12, b"\x77" * 32, b"\x01" * 32)
    log.close()
    assert main(["check-histories", "--json", *map(str, homes)]) == 1
    assert '"ok": false' in capsys.readouterr().out
    assert main(["check-histories", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err


def finals_at(tmp_path: Path, lines: list[tuple[int, float]]) -> Path:
    home = tmp_path / "node0"
    history_path(home).parent.mkdir(parents=True)
    history_path(home).write_text(
        "".join(
            json.dumps({"at": at, "final": h, "hash": f"{h:02x}", "root": "11"}) + "\n" for h, at in lines
        )
    )
    return home


def test_finality_must_resume_within_the_limit_after_each_heal(tmp_path: Path) -> None:
    home = finals_at(tmp_path, [(4, 100.0), (8, 108.0), (12, 130.0), (16, 131.0)])
    report = check_histories([home], healed_at=[104.0, 120.0], resume_within=15.0)
    assert [(r["seconds"], r["height"]) for r in report.resumes] == [(4.0, 8), (10.0, 12)]
    assert report.ok and report.worst_resume == 10.0 and not report.late_resumes
    late = check_histories([home], healed_at=[110.0], resume_within=15.0)  # 20 s: too late
    assert not late.ok and late.late_resumes == [{"healed_at": 110.0, "seconds": 20.0, "height": 12}]
    never = check_histories([home], healed_at=[140.0], resume_within=15.0)  # nothing final after it
    assert not never.ok and never.late_resumes == [{"healed_at": 140.0, "seconds": None, "height": None}]
    # a height final again at another node does not count: the first height above all before
    again = finals_at(tmp_path / "b", [(4, 100.0), (8, 101.0), (4, 106.0), (12, 112.0)])
    assert check_histories([again], healed_at=[105.0]).resumes[0]["height"] == 12


def test_the_longest_stall_names_the_faults_active_during_it(tmp_path: Path) -> None:
    from appchain.lab.checker import FaultWindow

    home = finals_at(tmp_path, [(4, 100.0), (8, 102.0), (12, 120.0), (16, 122.0)])
    faults = [
        FaultWindow("split 5/7", 104.0, 110.0),
        FaultWindow("node 3 paused", 100.5, 101.5),  # before the stall
        FaultWindow("node 2 isolated", 119.0, 125.0),
    ]
    report = check_histories([home], faults=faults)
    assert report.longest_stall_between == (8, 12)
    assert report.longest_stall_cause == ["split 5/7", "node 2 isolated"]
    assert check_histories([home]).longest_stall_cause == []


def test_the_command_reads_a_schedule_record_and_fails_a_late_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from appchain.cli.main import main
    from appchain.home.home import NodeConfig, render_config

    home = finals_at(tmp_path, [(4, 100.0), (8, 108.0), (12, 130.0)])
    (home / "config.toml").write_text(
        render_config(NodeConfig(stage_timeout_ms=1_000, round_timeout_ms=5_000))
    )
    record = tmp_path / "schedules.jsonl"
    fault = {"label": "split 5/7 at 0.0-4.0 s", "applied_at": 100.0, "healed_at": 104.0}
    record.write_text(json.dumps({"seed": 1, "healed_at": 104.0, "faults": [fault]}) + "\n")
    assert main(["check-histories", "--schedules", str(record), str(home)]) == 0
    out = capsys.readouterr().out
    assert "heals: 1, worst heal to next final block: 4.0 s (limit 15.0 s), late or never: 0" in out
    assert "during: schedule 1: split 5/7" not in out  # the longest stall (108-130) had no fault
    assert main(["check-histories", "--healed-at", "110", str(home)]) == 1  # 20 s > 3 x 5 s
    assert "finality resumed after 20.0 s the heal at 110.000" in capsys.readouterr().out
    assert main(["check-histories", "--healed-at", "110", "--resume-within", "30", str(home)]) == 0
    capsys.readouterr()
    record.write_text('{"seed": 1}\n')
    assert main(["check-histories", "--schedules", str(record), str(home)]) == 1
    assert f"{record}:1: not a schedule record" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check-histories", "--healed-at", "110", "--resume-within", "0", str(home)])
    assert "is not a number of seconds above 0" in capsys.readouterr().err
