"""The commands of the lab: ``testnet`` (node homes for a local network), ``devnet`` (a local
network of node processes with a live view), ``check-histories`` (what must never happen, over
a run's histories) and ``simulate`` (the deterministic network simulator).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appchain.cli.results import EXIT_OK, EXIT_TARGET_MISSED, EXIT_UNSAFE, EXIT_USER_ERROR, print_json
from appchain.cli.simulate import internet_config, make_simulation
from appchain.home.chain import ChainError
from appchain.home.home import Home
from appchain.lab.checker import RESUME_ROUNDS, FaultWindow, check_histories, read_schedules
from appchain.lab.checker import Report as CheckReport
from appchain.lab.testnet import write_testnet
from appchain.node.journal import history_path
from consensus.faults import FaultSpecError, parse_faults
from consensus.simulator import SimConfig
from genesis.presets import DEVNET


def cmd_testnet(args: argparse.Namespace) -> int:
    if args.nodes < 1 or args.spare < 0:
        raise ChainError("--nodes must be positive and --spare not negative")
    members = write_testnet(
        Path(args.out), args.nodes, base_port=args.base_port, seed=args.seed, spare=args.spare
    )
    print(f"wrote a testnet of {args.nodes} nodes to {args.out} (genesis {Path(args.out) / 'genesis.json'})")
    for member in members:
        print(
            f"  {member.home}: p2p 127.0.0.1:{member.p2p_port}, admin 127.0.0.1:{member.admin_port}, "
            f"rpc http://127.0.0.1:{member.rpc_port}/json_rpc, storage https://127.0.0.1:{member.storage_port}"
        )
    if args.nodes < DEVNET.pulse_min_nodes:
        print(
            f"note: Pulse needs {DEVNET.pulse_min_nodes} active service nodes (pulse_min_nodes);"
            " this network will not produce blocks"
        )
    return EXIT_OK


def cmd_devnet(args: argparse.Namespace) -> int:
    from appchain.lab.devnet import run_devnet

    if args.nodes < DEVNET.pulse_min_nodes:
        minimum = DEVNET.pulse_min_nodes
        raise ChainError(f"--nodes must be at least {minimum} (Pulse needs {minimum} active service nodes)")
    return run_devnet(
        Path(args.home), args.nodes, base_port=args.base_port, seconds=args.seconds, netns=args.netns
    )


def cmd_check_histories(args: argparse.Namespace) -> int:
    """Read every node's history of a run and report what must never happen (exit 1 if any)."""
    homes = [Path(home) for home in args.homes]
    for home in homes:
        if not history_path(home).exists():
            raise ChainError(f"{history_path(home)} does not exist: is {home} a node home that ran?")
    heals: list[float] = list(args.healed_at)
    faults: list[FaultWindow] = []
    if args.schedules:
        try:
            recorded, faults = read_schedules(Path(args.schedules))
        except OSError as exc:
            raise ChainError(f"cannot read {args.schedules}: {exc.strerror}") from None
        except ValueError as exc:
            raise ChainError(str(exc)) from None
        heals += recorded
    limit = args.resume_within
    if heals and limit is None:
        limit = RESUME_ROUNDS * Home(homes[0]).load_config().round_timeout_ms / 1000
    report = check_histories(homes, healed_at=heals, resume_within=limit, faults=faults)
    if args.json:
        print_json(report.to_json())
    else:
        _print_report(report)
    if report.bad_lines:  # a history that cannot be read is the user's to look at: name the line
        count = len(report.bad_lines)
        more = f" (and {count - 1} more unreadable lines)" if count > 1 else ""
        print(f"error: {report.bad_lines[0]}: {report.bad_line_reasons[0]}{more}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_USER_ERROR


def _print_report(report: CheckReport) -> None:
    finals = f"{report.final_records} final records up to height {report.highest_final}"
    print(f"{report.nodes} nodes, {finals}, {report.signatures} signatures")
    print(
        f"safety violations: {len(report.safety_violations)}, double signs: {len(report.double_signs)}, "
        f"diverging roots: {len(report.diverging_roots)}, unreadable lines: {len(report.bad_lines)}"
    )
    if report.longest_stall_between is not None:
        before, after = report.longest_stall_between
        stall = f"{report.longest_stall_seconds:.1f} s (between {before} and {after})"
        cause = "; ".join(report.longest_stall_cause) or "no recorded fault"
        print(f"longest stall of finality: {stall}" + (f", during: {cause}" if report.resumes else ""))
    if report.resumes:
        worst = report.worst_resume
        shown = "none" if worst is None else f"{worst:.1f} s"
        print(
            f"heals: {len(report.resumes)}, worst heal to next final block: {shown} "
            f"(limit {report.resume_within:.1f} s), late or never: {len(report.late_resumes)}"
        )
        for late in report.late_resumes:
            when = "never" if late["seconds"] is None else f"after {late['seconds']:.1f} s"
            print(f"  finality resumed {when} the heal at {late['healed_at']:.3f}")


def cmd_simulate(args: argparse.Namespace) -> int:
    floor = DEVNET.pulse_min_nodes
    if args.nodes < floor or args.blocks < 1:
        raise ChainError(
            f"--nodes must be at least {floor} (Pulse needs pulse_min_nodes active nodes)"
            " and --blocks positive"
        )
    base = (
        internet_config(args.nodes, args.blocks, args.seed)
        if args.internet
        else SimConfig(nodes=args.nodes, blocks=args.blocks, seed=args.seed, verify_once=True)
    )
    try:
        config = parse_faults(args.faults, base)
    except FaultSpecError as exc:
        raise ChainError(str(exc)) from None
    if args.internet and "loss=" not in args.faults:
        config.faults.loss = base.faults.loss
    simulation = make_simulation(config)
    report = simulation.run()
    if args.internet:
        report["network"] = simulation.topology_report()
    safe = report["roots_agree"] and report["safety_violations"] == 0 and report["double_signs"] == 0
    if args.json:
        print_json(report)
    else:
        print(f"final heights: {report['final_heights']}")
        print(
            f"roots agree: {report['roots_agree']}, safety violations: {report['safety_violations']}, "
            f"honest double signs: {report['double_signs']}"
        )
        print(
            f"highest round used: {report['rounds_used']}, messages: {report['messages']}, "
            f"simulated seconds: {report['simulated_seconds']}"
        )
        print(
            f"active nodes: {report['smallest_active']} at the fewest, {report['active_at_end']} at the end"
        )
        network = report.get("network")
        if network is not None:
            consensus = network["consensus_bytes_per_node_per_block"]
            print(
                f"per node and block: {network['messages_per_node_per_block']} messages,"
                f" {network['bytes_per_node_per_block']} bytes ({consensus}"
                f" consensus, {network['directory_bytes_per_node_per_block']} uptime proofs);"
                f" connections at most {network['connections_max']} (bound {network['bound']} + duties,"
                f" {network['over_bound']} over)"
            )
            print(
                f"block propagation p50/p99: {network['propagation_p50']}/{network['propagation_p99']} s,"
                f" finality p50/p99: {network['finality_p50']}/{network['finality_p99']} s"
            )
    if not safe:
        print("error: simulate: a safety property failed (see the report)", file=sys.stderr)
        return EXIT_UNSAFE
    if not report["target_reached"]:
        print(
            f"error: simulate: the honest nodes did not all finalize {args.blocks} blocks "
            f"within {report['simulated_seconds']} simulated seconds",
            file=sys.stderr,
        )
        return EXIT_TARGET_MISSED
    return EXIT_OK
