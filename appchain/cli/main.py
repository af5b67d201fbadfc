"""``appchain``: the command line, in the style of oxend and CometBFT.

Exit status:

====  =====================================================================================
0     success
1     a user mistake (bad genesis, missing or busy home, tampered export, bad value…): one
      ``error:`` line on stderr; the home is untouched
2     a usage error (unknown command or option, missing argument): argparse's message
3     corruption in the node's own database: one ``fatal:`` line naming what disagrees; the
      operator must act (restore, re-import, or replay from an export); nothing is written
4     ``simulate``: a safety property failed (roots differ, a final block forked, an honest
      double sign)
5     ``simulate``: safe, but the honest nodes did not finalize ``--blocks`` blocks in time
6     ``query``, ``tx``: a node answered something that does not verify; the evidence (its answer and
      every answer that verified) is printed as JSON on stdout
130   interrupted (Ctrl-C); an interrupted import is undone first
====  =====================================================================================

Anything else is a bug and shows its traceback.

Commands that use a home take ``--home DIR``; without it, ``$APPCHAIN_HOME``, else
``~/.appchain``. Each holds the home's lock while it runs (one process per home); ``status``
only reads, so it shares the lock with other readers, and a starting node waits for them
(:mod:`appchain.home.guard`).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import trio

from appchain.cli.client import ClientErrors, add_client_commands
from appchain.cli.devchain import DevChainGenerator
from appchain.cli.progress import Progress
from appchain.cli.simulate import make_simulation
from appchain.home.chain import Chain, ChainError, replay_from_genesis
from appchain.home.exchange import (
    ImportInterrupted,
    check_export_target,
    export_events,
    import_events,
    read_export_header,
)
from appchain.home.genesis_files import check_genesis_target, write_devnet
from appchain.home.guard import HomeInUse
from appchain.home.home import Home, NodeConfig, default_home
from appchain.home.safefile import UnsafeTarget
from appchain.home.store import BlockStore, StoreCorrupt, StoreInUse
from appchain.lab.checker import RESUME_ROUNDS, FaultWindow, check_histories, read_schedules
from appchain.lab.checker import Report as CheckReport
from appchain.lab.testnet import DEFAULT_BASE_PORT, write_testnet
from appchain.node.admin import ADMIN_FAILURES, RpcError
from appchain.node.admin import call as admin_call
from appchain.node.journal import history_path
from appchain.node.node import service_node_summary
from appchain.node.run import run_node
from consensus.faults import FaultSpecError, parse_faults
from consensus.simulator import SimConfig
from genesis.devnet import DevKeyError, load_dev_accounts, load_dev_nodes
from genesis.document import CHAIN_ID, Genesis, GenesisError
from genesis.load import load_genesis
from genesis.presets import DEVNET
from state.supply import compute_supply
from state.types import NodeKey

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_CORRUPT = 3
EXIT_UNSAFE = 4
EXIT_TARGET_MISSED = 5
EXIT_INTERRUPTED = 130


def _positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _print_json(data: object) -> None:
    print(json.dumps(data, sort_keys=True))


def cmd_genesis_new(args: argparse.Namespace) -> int:
    if args.nodes < 0 or args.users < 0:
        raise ChainError("--nodes and --users must not be negative")
    if not CHAIN_ID.match(args.chain_id):
        raise ChainError(
            f"--chain-id {args.chain_id!r}: 1 to 64 of lowercase letters, digits, '.', '_', '-', "
            "starting with a letter or digit"
        )
    out = Path(args.out)
    check_genesis_target(out, with_keys=True, force=args.force)
    genesis = write_devnet(
        out, args.nodes, args.seed, users=args.users, chain_id=args.chain_id, force=args.force
    )
    print(f"wrote {out} ({args.nodes} service nodes, {args.users} funded users)")
    print(f"wrote dev keys to {out.parent / 'keys'} (UNSAFE: derived from a public seed)")
    print(f"genesis hash: {genesis.hash.hex()}")
    return 0


def cmd_genesis_validate(args: argparse.Namespace) -> int:
    try:
        genesis = load_genesis(args.file)
    except GenesisError as exc:
        if len(exc.problems) == 1:
            print(f"error: {args.file}: {exc.problems[0]}", file=sys.stderr)
        else:
            print(f"error: {args.file}: {len(exc.problems)} problems", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(genesis.hash.hex())
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    if args.snapshot_interval < 1:
        raise ChainError("--snapshot-interval must be a positive number of blocks")
    config = NodeConfig(snapshot_interval=args.snapshot_interval)
    home, genesis = Home.init(Path(args.home), Path(args.genesis), config)
    print(f"initialised {home.path} for chain {genesis.chain_id}")
    print(f"genesis hash: {genesis.hash.hex()}")
    return 0


def cmd_dev_chain(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    keys = home.keys_path / "dev-accounts.json"
    if not keys.exists():
        raise ChainError(
            f"{keys} not found: initialise the home from a genesis made by `appchain genesis new`"
        )
    if args.blocks < 0 or args.events_per_block < 1:
        raise ChainError("--blocks must not be negative and --events-per-block must be positive")
    accounts = load_dev_accounts(keys)
    if not accounts:
        raise ChainError(f"{keys} lists no accounts: the dev chain needs funded accounts to sign with")
    nodes_file = home.keys_path / "dev-nodes.json"
    nodes = load_dev_nodes(nodes_file) if nodes_file.exists() else []
    with home.lock("dev-chain"), home.open_chain() as chain:
        limit = chain.state.params.max_block_events
        if args.events_per_block > limit:
            raise ChainError(f"--events-per-block {args.events_per_block} is above the chain's limit {limit}")
        generator = DevChainGenerator(
            chain,
            accounts,
            args.seed,
            events_per_block=args.events_per_block,
            nodes=nodes,
            mix=not args.transfers_only,
        )
        progress = Progress(args.blocks, "dev-chain")
        generator.run(args.blocks, progress)
        progress.finish()
        print(f"height {chain.height} (final {chain.final_height}), state root {chain.state.root.hex()}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    with home.lock("replay"):
        genesis = home.load_genesis()
        return _replay(home, genesis, args)


def _replay(home: Home, genesis: Genesis, args: argparse.Namespace) -> int:
    with BlockStore(home.db_path) as store:
        applied = store.get_applied()
        total = applied.height if applied else 0
        progress = Progress(total, "replay", enabled=not args.json)
        started = time.perf_counter()
        state = replay_from_genesis(
            store, genesis, verify_signatures=args.verify_signatures, progress=progress
        )
        seconds = time.perf_counter() - started
        progress.finish()
    rate = progress.events / seconds if seconds > 0 else 0.0
    supply = compute_supply(state)
    result = {
        "height": state.height,
        "state_root": state.root.hex(),
        "block_hash": state.block_hash.hex(),
        "blocks": progress.done,
        "events": progress.events,
        "seconds": round(seconds, 3),
        "events_per_second": round(rate),
        "signatures_verified": args.verify_signatures,
        "supply": {
            "genesis": str(genesis.total_supply),
            "balances": str(supply.balances),
            "stakes": str(supply.stakes),
            "locked_stakes": str(supply.locked_stakes),
            "pool": str(supply.pool),
            "accrued_rewards": str(supply.accrued_rewards),
            "unsettled_rewards": str(supply.unsettled_rewards),
            "total": str(supply.total),
            "conserved": supply.total == genesis.total_supply,
        },
    }
    if args.json:
        _print_json(result)
    else:
        print(f"replayed {progress.done} blocks ({progress.events} events) in {seconds:.2f} s")
        print(f"{rate:,.0f} events/s")
        print(f"height {state.height}")
        print(f"state root {state.root.hex()}")
        verdict = "conserved" if supply.total == genesis.total_supply else "NOT CONSERVED"
        print(f"supply {supply.total} of genesis {genesis.total_supply}: {verdict}")
    return 0


STATUS_DATABASE_WAIT = 5.0
"""Seconds ``status`` waits for another read-only command to close the database (LevelDB admits
one opener at a time; they share the home's lock)."""


def cmd_status(args: argparse.Namespace) -> int:
    """The home's tip: from the database when no node runs, else from the node's admin endpoint.

    It never keeps a node from starting (:mod:`appchain.home.guard`): it reads the database under a
    shared lock that a starting node waits out, and keeps out of a home a node holds, asking the
    node instead. A node that holds its home and does not answer (still starting, or hung) is
    reported as running and not answering, with the reason; not an error."""
    home = Home(Path(args.home))
    lock = home.lock("status", shared=True)
    try:
        lock.acquire()
    except HomeInUse as exc:
        if not exc.by_node:
            raise  # a command that writes holds the home (replay, rollback…): nothing to ask
        result = _running_status(home, exc)
    else:
        try:
            result = _stored_status(home)
        finally:
            lock.release()
    if args.json:
        _print_json(result)
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


def _open_to_read(home: Home) -> Chain:
    """The home's chain, waiting up to :data:`STATUS_DATABASE_WAIT` for another reader to close it."""
    deadline = time.monotonic() + STATUS_DATABASE_WAIT
    while True:
        try:
            return home.open_chain()
        except StoreInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stored_status(home: Home) -> dict[str, object]:
    with _open_to_read(home) as chain:
        final = chain.final_height
        header = chain.store.get_header(final)
        own = None
        if home.node_key_path.exists():
            key, _ = home.load_node_keys()
            own = service_node_summary(chain.state, NodeKey(key.public_key))
        return {
            "running": False,
            "rpc_url": home.load_config().rpc_url,
            "chain_id": chain.genesis.chain_id,
            "genesis_hash": chain.genesis.hash.hex(),
            "height": chain.height,
            "final_height": final,
            "final_root": "" if header is None else header.state_root.hex(),
            "block_hash": chain.state.block_hash.hex(),
            "state_root": chain.state.root.hex(),
            "state_entries": len(chain.state),
            "snapshots": chain.store.list_snapshots(),
            "peers": 0,
            "service_node": own,
        }


def _running_status(home: Home, busy: HomeInUse) -> dict[str, object]:
    """The status a node that holds the home answers, or why it does not answer."""
    config = home.load_config()
    try:
        result = admin_call(config.admin_address, "status", timeout=2.0)
    except ADMIN_FAILURES as exc:
        problem = f"error {exc.code}: {exc}" if isinstance(exc, RpcError) else str(exc)
        return {"running": True, "answering": False, "holder": busy.holder, "admin_error": problem}
    if not isinstance(result, dict):
        problem = f"a status that is a JSON {type(result).__name__}, not an object"
        return {"running": True, "answering": False, "holder": busy.holder, "admin_error": problem}
    return {**result, "answering": True}


def cmd_start(args: argparse.Namespace) -> int:
    """Run the node. With ``APPCHAIN_PROFILE=FILE`` it runs under cProfile and writes the stats
    to FILE when it stops (``bench/devnet.py --profile`` reads them)."""
    home = Home(Path(args.home))
    profile_path = os.environ.get("APPCHAIN_PROFILE")
    profiler = cProfile.Profile() if profile_path else None
    try:
        if profiler is not None:
            profiler.enable()
        trio.run(run_node, home)
    except BaseExceptionGroup as group:
        raise _single_error(group) from None
    finally:
        if profiler is not None and profile_path:
            profiler.disable()
            profiler.dump_stats(profile_path)
    return EXIT_OK


def _single_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error inside a task group, when it is one of the kinds the CLI reports in one line."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for leaf in leaves:
        if isinstance(leaf, ChainError | StoreCorrupt | StoreInUse | OSError | KeyboardInterrupt):
            return leaf
    return group


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
            f"rpc http://127.0.0.1:{member.rpc_port}/json_rpc"
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


def cmd_export_events(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    check_export_target(Path(args.out), force=args.force)  # before the home is opened
    with home.lock("export-events"), home.open_chain() as chain:
        progress = Progress(chain.height + 1, "export")
        height = export_events(
            chain.store,
            chain.genesis.hash,
            home.genesis_path.read_bytes(),
            Path(args.out),
            chain_id=chain.genesis.chain_id,
            force=args.force,
            progress=progress,
        )
        progress.finish()
    print(f"exported blocks 0..{height} to {args.out}")
    return 0


def cmd_export_genesis(args: argparse.Namespace) -> int:
    from appchain.home import genesis_export as export

    if args.height < 0:
        raise ChainError(f"--height {args.height} must not be negative")
    if args.replace_nodes is not None and args.replace_nodes < 1:
        raise ChainError(f"--replace-nodes {args.replace_nodes} must be at least 1")
    if args.seed is not None and args.replace_nodes is None:
        raise ChainError("--seed names the keys of replacement nodes: it needs --replace-nodes")
    if args.chain_id is not None and not CHAIN_ID.match(args.chain_id):
        raise ChainError(
            f"--chain-id {args.chain_id!r}: 1 to 64 of lowercase letters, digits, '.', '_', '-', "
            "starting with a letter or digit"
        )
    if args.genesis_time is not None and args.genesis_time < 0:
        raise ChainError(f"--genesis-time {args.genesis_time} must not be negative")
    out = Path(args.out)
    export.check_out_path(out, with_keys=args.replace_nodes is not None, force=args.force)
    home = Home(Path(args.home))
    with home.lock("export-genesis"):
        old = home.load_genesis()
        chain_id = args.chain_id or export.default_chain_id(old.chain_id, args.height)
        with export.open_store(home) as store:
            start = export.plan_state_at(store, old, args.height)
            progress = Progress(args.height - start.from_height, "export-genesis")
            state = export.rebuild_state_at(store, old, start, progress=progress)
            progress.finish()
    genesis, summary, dev_nodes = export.build_export(
        state,
        chain_id=chain_id,
        genesis_time=state.timestamp if args.genesis_time is None else args.genesis_time,
        replace_nodes=args.replace_nodes,
        seed=chain_id if args.seed is None else args.seed,
    )
    export.write_export(out, genesis, dev_nodes, force=args.force)
    print(f"wrote {out}: the state at height {state.height} (root {state.root.hex()}) as chain {chain_id}")
    print(
        f"{len(genesis.allocations)} balances, {len(genesis.service_nodes)} service nodes, "
        f"{len(genesis.sns_records)} names, reward pool {genesis.reward_pool}, supply {genesis.total_supply}"
    )
    print(
        f"moved to balances: rewards {summary.rewards_credited}, "
        f"locked stakes {summary.locked_stakes_returned}, stakes of {summary.awaiting_registrations_dropped} "
        f"unfilled registrations {summary.awaiting_stakes_returned}; "
        f"dropped {summary.expired_names_dropped} expired names"
    )
    if dev_nodes:
        print(
            f"replaced {summary.replaced_nodes} nodes (stakes {summary.replaced_stakes_returned} returned) "
            f"by {len(dev_nodes)} dev nodes staked from the pool; keys in {out.parent / 'keys'} "
            "(UNSAFE: derived from a public seed)"
        )
        if len(dev_nodes) < genesis.params.pulse_min_nodes:
            print(
                f"note: Pulse needs {genesis.params.pulse_min_nodes} active service nodes (pulse_min_nodes);"
                " this network will not produce blocks"
            )
    print(f"genesis hash: {genesis.hash.hex()}")
    return 0


def cmd_import_events(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    source = Path(args.in_file)
    header = read_export_header(source)
    with home.lock("import-events"), home.open_chain() as chain:
        progress = Progress(header.last_height, "import")
        try:
            height = import_events(
                chain, source, verify_signatures=not args.trust_signatures, progress=progress
            )
        except ImportInterrupted as exc:
            progress.finish()
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INTERRUPTED
        progress.finish()
        print(f"imported blocks 1..{height}; state root {chain.state.root.hex()}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    with home.lock("rollback"), home.open_chain() as chain:
        chain.rollback(args.height)
        print(f"rolled back to height {chain.height}; state root {chain.state.root.hex()}")
    return 0


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
        limit = RESUME_ROUNDS * Home(homes[0]).load_config().round_timeout
    report = check_histories(homes, healed_at=heals, resume_within=limit, faults=faults)
    if args.json:
        _print_json(report.to_json())
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
    try:
        config = parse_faults(
            args.faults, SimConfig(nodes=args.nodes, blocks=args.blocks, seed=args.seed, verify_once=True)
        )
    except FaultSpecError as exc:
        raise ChainError(str(exc)) from None
    report = make_simulation(config).run()
    safe = report["roots_agree"] and report["safety_violations"] == 0 and report["double_signs"] == 0
    if args.json:
        _print_json(report)
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


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="the node's home folder (default: $APPCHAIN_HOME, else ~/.appchain)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appchain", description="A service-node appchain node.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    genesis = commands.add_parser("genesis", help="create and check genesis files")
    genesis_commands = genesis.add_subparsers(dest="genesis_command", required=True, metavar="ACTION")
    new = genesis_commands.add_parser("new", help="write a devnet genesis with deterministic dev keys")
    new.add_argument("--nodes", type=int, required=True, help="funded service nodes")
    new.add_argument("--seed", required=True, help="seed of every dev key (same seed, same files)")
    new.add_argument("--out", required=True, help="genesis file to write; keys go to keys/ beside it")
    new.add_argument("--users", type=int, default=8, help="funded user accounts (default 8)")
    new.add_argument("--chain-id", default="appchain-devnet")
    new.add_argument("--force", action="store_true", help="overwrite an existing genesis file and keys/")
    new.set_defaults(handler=cmd_genesis_new)
    validate = genesis_commands.add_parser("validate", help="check a genesis file and print its hash")
    validate.add_argument("file")
    validate.set_defaults(handler=cmd_genesis_validate)

    init = commands.add_parser("init", help="create a node home from a genesis file")
    _add_home(init)
    init.add_argument("--genesis", required=True)
    init.add_argument("--snapshot-interval", type=int, default=NodeConfig.snapshot_interval)
    init.set_defaults(handler=cmd_init)

    dev = commands.add_parser("dev-chain", help="append blocks of random signed transactions")
    _add_home(dev)
    dev.add_argument("--blocks", type=int, required=True)
    dev.add_argument("--seed", required=True)
    dev.add_argument("--events-per-block", type=int, default=100)
    dev.add_argument(
        "--transfers-only", action="store_true", help="only transfers, no service-node or SNS events"
    )
    dev.set_defaults(handler=cmd_dev_chain)

    replay = commands.add_parser("replay", help="rebuild the state from genesis and check every root")
    _add_home(replay)
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument(
        "--verify-signatures", action="store_true", help="re-verify every signature (default: trust the log)"
    )
    replay.set_defaults(handler=cmd_replay)

    status = commands.add_parser("status", help="open the home (handshake) and show its tip")
    _add_home(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    export = commands.add_parser("export-events", help="write the event log to a file")
    _add_home(export)
    export.add_argument("--out", required=True)
    export.add_argument("--force", action="store_true", help="replace an existing file (a regular file only)")
    export.set_defaults(handler=cmd_export_events)

    export_genesis = commands.add_parser(
        "export-genesis", help="write the state at a final height as the genesis of a new chain"
    )
    _add_home(export_genesis)
    export_genesis.add_argument("--height", type=int, required=True, help="a final height")
    export_genesis.add_argument(
        "--out", required=True, help="the genesis file to write, in an existing folder"
    )
    export_genesis.add_argument(
        "--replace-nodes",
        type=int,
        default=None,
        metavar="N",
        help="replace the node set by N dev nodes staked from the reward pool (keys/ beside --out)",
    )
    export_genesis.add_argument(
        "--seed", default=None, help="dev key seed of --replace-nodes (default: chain id)"
    )
    export_genesis.add_argument(
        "--chain-id", default=None, help="the new chain id (default: the old one + -h<H>)"
    )
    export_genesis.add_argument(
        "--genesis-time", type=int, default=None, help="unix seconds (default: the timestamp of block H)"
    )
    export_genesis.add_argument("--force", action="store_true", help="overwrite an existing file and keys/")
    export_genesis.set_defaults(handler=cmd_export_genesis)

    imp = commands.add_parser("import-events", help="rebuild a fresh home from an export")
    _add_home(imp)
    imp.add_argument("--in", dest="in_file", required=True)
    imp.add_argument(
        "--trust-signatures",
        action="store_true",
        help="skip verifying Pulse data and signatures (only for an export you made yourself)",
    )
    imp.set_defaults(handler=cmd_import_events)

    rollback = commands.add_parser("rollback", help="undo the non-final blocks above a height")
    _add_home(rollback)
    rollback.add_argument("--height", type=int, required=True)
    rollback.set_defaults(handler=cmd_rollback)

    start = commands.add_parser("start", help="run the node: p2p, consensus, admin endpoint (until Ctrl-C)")
    _add_home(start)
    start.set_defaults(handler=cmd_start)

    testnet = commands.add_parser("testnet", help="write N node homes for a local network")
    testnet.add_argument("--nodes", type=int, required=True)
    testnet.add_argument("--out", required=True, help="a new folder: genesis.json, keys/, node0 … node{N-1}")
    testnet.add_argument(
        "--base-port", type=int, default=DEFAULT_BASE_PORT, help="node i: p2p P+3i, admin P+3i+1, rpc P+3i+2"
    )
    testnet.add_argument("--seed", default=None, help="dev key seed (default: random)")
    testnet.add_argument("--spare", type=int, default=0, help="extra homes with keys not in the genesis")
    testnet.set_defaults(handler=cmd_testnet)

    devnet = commands.add_parser("devnet", help="start a local network of node processes with a live view")
    devnet.add_argument("--nodes", type=int, default=12)
    devnet.add_argument("--home", default=".devnet", help="the testnet folder (created when missing)")
    devnet.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    devnet.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: Ctrl-C)")
    devnet.add_argument(
        "--netns",
        action="store_true",
        help="each node in its own network namespace, as on its own host (root)",
    )
    devnet.set_defaults(handler=cmd_devnet)

    check = commands.add_parser(
        "check-histories", help="check the histories of a run's nodes: safety, double signs, roots, stalls"
    )
    check.add_argument("homes", nargs="+", metavar="HOME")
    check.add_argument("--json", action="store_true")
    check.add_argument(
        "--schedules",
        metavar="FILE",
        help="the fault record of a run (appchain.lab.nemesis): heals and fault times",
    )
    check.add_argument(
        "--healed-at", type=float, action="append", default=[], metavar="UNIX_TIME",
        help="a time faults were healed: finality must resume within --resume-within of it (repeatable)",
    )  # fmt: skip
    check.add_argument(
        "--resume-within", type=_positive_seconds, default=None, metavar="SECONDS",
        help=f"default: {RESUME_ROUNDS} Pulse round timeouts (the first home's config)",
    )  # fmt: skip
    check.set_defaults(handler=cmd_check_histories)
    sim = commands.add_parser("simulate", help="run N nodes in the deterministic network simulator")
    sim.add_argument("--nodes", type=int, default=30)
    sim.add_argument("--blocks", type=int, default=20, help="stop once every honest node has this many final")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--faults",
        default="",
        help="e.g. loss=0.05,crash=3@5-40,partition=0-9|10-29@6-40,floor=1-9@30,stall=30-1600",
    )
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(handler=cmd_simulate)

    add_client_commands(commands)
    return parser


def _version() -> str:
    try:
        return metadata.version("appchain")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "home" in args and args.home is None:
        args.home = default_home()
    try:
        status: int = args.handler(args)
    except GenesisError as exc:
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        print(f"error: genesis: {exc.problems[0]}{more}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (ChainError, StoreInUse, DevKeyError, UnsafeTarget) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ClientErrors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except StoreCorrupt as exc:
        print(f"fatal: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    except OSError as exc:  # a path the user named: missing, a folder, not writable, disk full
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status
