"""``make devnet``: the most complete thing the node can do today, end to end, on one machine.

Nodes do not talk over a real network yet (the p2p issue), so this runs two things:

1. a 12-node network in the deterministic simulator: every node runs the real Pulse rounds and
   checkpoint votes over an in-memory network, with a live view of heights, finality, rounds and
   stage timings;
2. the real commands on a 12-node devnet genesis: create the genesis and a node home, append
   Pulse-signed blocks of random events of every kind, restart (snapshot + replay handshake),
   replay from genesis, export the log, rebuild a second home from the export, and verify a
   light-client state proof. Every root must agree.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

from appchain.cli import main as cli
from appchain.home import Home
from appchain.simulate import make_simulation
from consensus.simulator import SimConfig, Simulation
from state.crypto import ed25519
from state.encoding import decode
from state.ledger import Account, account_key
from state.membership import get_swarms
from state.nodes import NodeStatus, iter_nodes
from state.smt import verify_proof
from state.view import Overlay

FOLDER = Path(".devnet")
BLOCKS = 200


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(*args: str, capture: bool = False) -> str:
    print("$ appchain " + " ".join(args), flush=True)
    buffer = StringIO()
    if capture:
        with redirect_stdout(buffer):
            code = cli(list(args))
    else:
        code = cli(list(args))
    if code != 0:
        raise SystemExit(f"devnet: `appchain {' '.join(args)}` failed with exit status {code}")
    return buffer.getvalue()


def run_network() -> bool:
    step("a 12-node network in the simulator (real Pulse rounds and checkpoints, in-memory network)")
    config = SimConfig(nodes=12, blocks=16, seed=2026, latency=0.05, jitter=0.05)
    header = "    t | height/final per node (nodes 0..11)" + " " * 26 + "| round | last round (s), per node"
    print(header)

    def watch(sim: Simulation) -> None:
        cells = " ".join(f"{n.height:2d}/{n.final_height:<2d}" for n in sim.nodes)
        last_round = max(n.rounds_used[-1] if n.rounds_used else 0 for n in sim.nodes)
        durations = " ".join(f"{max(n.stage_times.values(), default=0):.2f}" for n in sim.nodes)
        elapsed = sim.now - sim.genesis.genesis_time
        print(f"{elapsed:5.1f} | {cells} | {last_round:5d} | {durations}", flush=True)

    simulation = make_simulation(config)
    report = simulation.run(watch=watch, watch_every=2.0)
    print("stage timings of each node's last round (seconds from the round's start):")
    for node in simulation.nodes:
        stages = "  ".join(f"{name} {seconds:.2f}" for name, seconds in node.stage_times.items())
        print(f"  node {node.index:2d}: {stages or 'not in the last quorum'}")
    ok = report["roots_agree"] and report["safety_violations"] == 0 and report["double_signs"] == 0
    print(
        f"final heights {report['final_heights']}; roots agree {report['roots_agree']}; "
        f"safety violations {report['safety_violations']}; {report['messages']} messages"
    )
    return bool(ok)


def main() -> int:
    print("appchain devnet: nodes do not talk over a real network yet (the p2p issue). This runs")
    print("12 nodes in the deterministic simulator, then the node's commands on a devnet home.")
    shutil.rmtree(FOLDER, ignore_errors=True)
    if not run_network():
        return 1
    genesis = FOLDER / "net" / "genesis.json"
    node1, node2 = FOLDER / "node1", FOLDER / "node2"

    step("genesis with 12 funded service nodes (deterministic, UNSAFE dev keys)")
    run("genesis", "new", "--nodes", "12", "--seed", "devnet", "--out", str(genesis))
    run("genesis", "validate", str(genesis))

    step(f"node home, then {BLOCKS} blocks of random signed transfers")
    run("init", "--home", str(node1), "--genesis", str(genesis), "--snapshot-interval", "50")
    run("dev-chain", "--home", str(node1), "--blocks", str(BLOCKS), "--seed", "devnet")

    step("restart: newest snapshot + replay of the tail, every root checked")
    status = json.loads(run("status", "--home", str(node1), "--json", capture=True))
    print(f"height {status['height']}, state root {status['state_root']}, snapshots {status['snapshots']}")

    step("replay from genesis")
    replay = json.loads(run("replay", "--home", str(node1), "--json", capture=True))
    print(f"height {replay['height']}, {replay['events_per_second']:,} events/s, root {replay['state_root']}")
    supply = replay["supply"]
    print(
        f"supply: balances {supply['balances']}, stakes {supply['stakes']}, locked {supply['locked_stakes']},"
    )
    print(f"        pool {supply['pool']}, accrued rewards {supply['accrued_rewards']}")
    print(f"        total {supply['total']} of genesis {supply['genesis']}: conserved {supply['conserved']}")

    step("service nodes and swarms")
    with Home(node1).open_chain() as chain:
        view = Overlay(chain.state.get)
        states = Counter(NodeStatus(node.status).name.lower() for _, node in iter_nodes(view))
        print("nodes: " + ", ".join(f"{count} {name}" for name, count in sorted(states.items())))
        for swarm in get_swarms(view):
            print(f"swarm {swarm.swarm_id:>20}: {len(swarm.members)} members")

    step("export the log and rebuild a second home from it, verifying signatures")
    export = FOLDER / "chain.events"
    run("export-events", "--home", str(node1), "--out", str(export))
    run("init", "--home", str(node2), "--genesis", str(genesis))
    run("import-events", "--home", str(node2), "--in", str(export))
    rebuilt = json.loads(run("status", "--home", str(node2), "--json", capture=True))

    step("light-client proof: an account balance against the header's state root")
    with Home(node1).open_chain() as chain:
        accounts = json.loads((node1 / "keys" / "dev-accounts.json").read_text())["accounts"]
        user = ed25519.SigningKey(bytes.fromhex(accounts[-1]["seed"])).public_key
        value, proof = chain.state.prove(account_key(user))
        header = chain.store.get_header(chain.height)
        assert header is not None and value is not None
        proven = verify_proof(header.state_root, account_key(user), value, proof)
        balance = decode(value, Account).balance
        print(
            f"account {user.hex()[:16]}… balance {balance} proven: {proven} ({len(proof.siblings)} siblings)"
        )

    agree = status["state_root"] == replay["state_root"] == rebuilt["state_root"] and supply["conserved"]
    step("result")
    print(f"node1 after restart : {status['state_root']}")
    print(f"replay from genesis : {replay['state_root']}")
    print(f"node2 from export   : {rebuilt['state_root']}")
    print("all roots agree" if agree and proven else "ROOTS DISAGREE")
    return 0 if agree and proven else 1


if __name__ == "__main__":
    sys.exit(main())
