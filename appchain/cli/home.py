"""The commands that work on a home's folder and the files of a chain: ``genesis new`` and
``genesis validate``, ``init``, ``dev-chain``, ``replay``, ``export-events``, ``import-events``,
``export-genesis`` and ``rollback``.

Each takes the home's lock for as long as it runs (:mod:`appchain.home.guard`); what it writes
follows the one rule for files (:mod:`appchain.home.safefile`); long work shows progress
(:mod:`appchain.cli.progress`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from appchain.cli.devchain import DevChainGenerator
from appchain.cli.progress import Progress
from appchain.cli.results import EXIT_INTERRUPTED, EXIT_USER_ERROR, print_json
from appchain.home.chain import ChainError, replay_from_genesis
from appchain.home.exchange import (
    ImportInterrupted,
    check_export_target,
    export_events,
    import_events,
    read_export_header,
)
from appchain.home.genesis_files import check_genesis_target, write_devnet
from appchain.home.home import Home, NodeConfig
from appchain.home.store import BlockStore
from genesis.devnet import load_dev_accounts, load_dev_nodes
from genesis.document import CHAIN_ID, Genesis, GenesisError
from genesis.export import compute_export_genesis_time
from genesis.load import load_genesis
from state.supply import compute_supply


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
        print_json(result)
    else:
        print(f"replayed {progress.done} blocks ({progress.events} events) in {seconds:.2f} s")
        print(f"{rate:,.0f} events/s")
        print(f"height {state.height}")
        print(f"state root {state.root.hex()}")
        verdict = "conserved" if supply.total == genesis.total_supply else "NOT CONSERVED"
        print(f"supply {supply.total} of genesis {genesis.total_supply}: {verdict}")
    return 0


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
        genesis_time=compute_export_genesis_time(state.timestamp)
        if args.genesis_time is None
        else args.genesis_time,
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
