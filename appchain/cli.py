"""``appchain``: the command line, in the style of oxend and CometBFT.

Every user mistake (bad genesis, missing home, tampered export…) is one ``error:`` line on
stderr and exit status 1. Corruption found in a node's own database is one ``fatal:`` line and
exit status 2: the operator must act (restore, re-import, or replay from an export). Anything
else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from appchain.chain import ChainError, replay_from_genesis
from appchain.devchain import DevChainGenerator
from appchain.exchange import export_events, import_events, read_export_header
from appchain.home import Home, NodeConfig
from appchain.progress import Progress
from appchain.simulate import make_simulation
from appchain.store import BlockStore, StoreCorrupt, StoreInUse
from consensus.faults import FaultSpecError, parse_faults
from consensus.simulator import SimConfig
from genesis.devnet import load_dev_accounts, load_dev_nodes, write_devnet
from genesis.document import GenesisError, load_genesis
from state.supply import compute_supply

EXIT_USER_ERROR = 1
EXIT_CORRUPT = 2


def _print_json(data: object) -> None:
    print(json.dumps(data, sort_keys=True))


def cmd_genesis_new(args: argparse.Namespace) -> int:
    if args.nodes < 0 or args.users < 0:
        raise ChainError("--nodes and --users must not be negative")
    out = Path(args.out)
    genesis = write_devnet(out, args.nodes, args.seed, users=args.users, chain_id=args.chain_id)
    print(f"wrote {out} ({args.nodes} service nodes, {args.users} funded users)")
    print(f"wrote dev keys to {out.parent / 'keys'} (UNSAFE: derived from a public seed)")
    print(f"genesis hash: {genesis.hash.hex()}")
    return 0


def cmd_genesis_validate(args: argparse.Namespace) -> int:
    try:
        genesis = load_genesis(args.file)
    except GenesisError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(genesis.hash.hex())
    return 0


def cmd_init(args: argparse.Namespace) -> int:
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
    with home.open_chain() as chain:
        nodes_file = home.keys_path / "dev-nodes.json"
        generator = DevChainGenerator(
            chain,
            load_dev_accounts(keys),
            args.seed,
            events_per_block=args.events_per_block,
            nodes=load_dev_nodes(nodes_file) if nodes_file.exists() else (),
            mix=not args.transfers_only,
        )
        progress = Progress(args.blocks, "dev-chain")
        generator.run(args.blocks, progress)
        progress.finish()
        print(f"height {chain.height} (final {chain.final_height}), state root {chain.state.root.hex()}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    genesis = home.load_genesis()
    home.load_config()
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


def cmd_status(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    with home.open_chain() as chain:
        result = {
            "chain_id": chain.genesis.chain_id,
            "genesis_hash": chain.genesis.hash.hex(),
            "height": chain.height,
            "final_height": chain.final_height,
            "block_hash": chain.state.block_hash.hex(),
            "state_root": chain.state.root.hex(),
            "state_entries": len(chain.state),
            "snapshots": chain.store.list_snapshots(),
        }
    if args.json:
        _print_json(result)
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


def cmd_export_events(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    with home.open_chain() as chain:
        progress = Progress(chain.height + 1, "export")
        height = export_events(
            chain.store,
            chain.genesis.hash,
            home.genesis_path.read_bytes(),
            Path(args.out),
            chain_id=chain.genesis.chain_id,
            progress=progress,
        )
        progress.finish()
    print(f"exported blocks 0..{height} to {args.out}")
    return 0


def cmd_import_events(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    source = Path(args.in_file)
    if not source.exists():
        raise ChainError(f"{source} does not exist")
    header = read_export_header(source)
    with home.open_chain() as chain:
        progress = Progress(header.last_height, "import")
        height = import_events(chain, source, verify_signatures=args.verify, progress=progress)
        progress.finish()
        print(f"imported blocks 1..{height}; state root {chain.state.root.hex()}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    home = Home(Path(args.home))
    with home.open_chain() as chain:
        chain.rollback(args.height)
        print(f"rolled back to height {chain.height}; state root {chain.state.root.hex()}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.nodes < 12 or args.blocks < 1:
        raise ChainError("--nodes must be at least 12 (Pulse needs 12 active nodes) and --blocks positive")
    try:
        config = parse_faults(args.faults, SimConfig(nodes=args.nodes, blocks=args.blocks, seed=args.seed))
    except FaultSpecError as exc:
        raise ChainError(str(exc)) from None
    report = make_simulation(config).run()
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
    safe = report["roots_agree"] and report["safety_violations"] == 0 and report["double_signs"] == 0
    return 0 if safe else EXIT_CORRUPT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appchain", description="A service-node appchain node.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    genesis = commands.add_parser("genesis", help="create and check genesis files")
    genesis_commands = genesis.add_subparsers(dest="genesis_command", required=True, metavar="ACTION")
    new = genesis_commands.add_parser("new", help="write a devnet genesis with deterministic dev keys")
    new.add_argument("--nodes", type=int, required=True, help="funded service nodes")
    new.add_argument("--seed", required=True, help="seed of every dev key (same seed, same files)")
    new.add_argument("--out", required=True, help="genesis file to write; keys go to keys/ beside it")
    new.add_argument("--users", type=int, default=8, help="funded user accounts (default 8)")
    new.add_argument("--chain-id", default="appchain-devnet")
    new.set_defaults(handler=cmd_genesis_new)
    validate = genesis_commands.add_parser("validate", help="check a genesis file and print its hash")
    validate.add_argument("file")
    validate.set_defaults(handler=cmd_genesis_validate)

    init = commands.add_parser("init", help="create a node home from a genesis file")
    init.add_argument("--home", required=True)
    init.add_argument("--genesis", required=True)
    init.add_argument("--snapshot-interval", type=int, default=NodeConfig.snapshot_interval)
    init.set_defaults(handler=cmd_init)

    dev = commands.add_parser("dev-chain", help="append blocks of random signed transactions")
    dev.add_argument("--home", required=True)
    dev.add_argument("--blocks", type=int, required=True)
    dev.add_argument("--seed", required=True)
    dev.add_argument("--events-per-block", type=int, default=100)
    dev.add_argument(
        "--transfers-only", action="store_true", help="only transfers, no service-node or SNS events"
    )
    dev.set_defaults(handler=cmd_dev_chain)

    replay = commands.add_parser("replay", help="rebuild the state from genesis and check every root")
    replay.add_argument("--home", required=True)
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument(
        "--verify-signatures", action="store_true", help="re-verify every signature (default: trust the log)"
    )
    replay.set_defaults(handler=cmd_replay)

    status = commands.add_parser("status", help="open the home (handshake) and show its tip")
    status.add_argument("--home", required=True)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    export = commands.add_parser("export-events", help="write the event log to a file")
    export.add_argument("--home", required=True)
    export.add_argument("--out", required=True)
    export.set_defaults(handler=cmd_export_events)

    imp = commands.add_parser("import-events", help="rebuild a fresh home from an export")
    imp.add_argument("--home", required=True)
    imp.add_argument("--in", dest="in_file", required=True)
    imp.add_argument("--verify", action="store_true", help="also verify every signature")
    imp.set_defaults(handler=cmd_import_events)

    rollback = commands.add_parser("rollback", help="undo the non-final blocks above a height")
    rollback.add_argument("--home", required=True)
    rollback.add_argument("--height", type=int, required=True)
    rollback.set_defaults(handler=cmd_rollback)

    sim = commands.add_parser("simulate", help="run N nodes in the deterministic network simulator")
    sim.add_argument("--nodes", type=int, default=30)
    sim.add_argument("--blocks", type=int, default=20, help="stop once every honest node has this many final")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--faults", default="", help="e.g. loss=0.05,crash=3@5-40,partition=0-9|10-29@6-40")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(handler=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except GenesisError as exc:
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        print(f"error: genesis: {exc.problems[0]}{more}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (ChainError, StoreInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except StoreCorrupt as exc:
        print(f"fatal: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
