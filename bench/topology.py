"""The network at 100, 500 and 2,000 service nodes, in the simulator: what a node sends and holds.

Each size runs in a fresh process: the deterministic simulator (:mod:`consensus.simulator`) with
the same node core as the process node, on a bounded topology (:mod:`consensus.topology`: 8
gossip peers dialled, up to 64 accepted, direct connections to quorum members while on duty;
:mod:`consensus.gossip`: bodies to ⌈√n⌉ peers, hashes to the rest) over a simulated WAN
(:mod:`consensus.simnet`: six regions 20–300 ms apart one way, 10 % jitter, 1 % packet loss with a
0.3 s retransmission, 100 Mbit/s upload per node): :func:`appchain.cli.simulate.internet_config`,
as ``appchain simulate --internet`` runs it. The chain has mainnet's shape twelve times faster (10 s
blocks, a proof every 30 blocks, a network that has run a while: every node holds every proof,
each sends its next at a random point of the interval), so a proof costs per block what it costs
on mainnet.

Per size it prints, per node and per block: messages and bytes (sent plus received), the
consensus part (blocks, certificates, Pulse, votes, their announcements) and the directory part
(uptime proofs: every node keeps every node's, so this part grows with the network, by design, as
in Oxen); the most connections a node held, against its bound (outbound + inbound; its quorum
members on top, never counted as over); block propagation (from the quorum signing a block to
each node applying it, and to the last node that did) and finality (from a block's timestamp to
each node holding it final), p50 and p99. Then the issue's ratios: bytes per node per block at
the largest size ÷ the smallest (aim ≤ 3), finality p50 and p99 likewise (aim ≤ 1.5), and
connections over the bound (aim 0). Run: ``python -m bench.topology [--sizes 100,500,2000]
[--blocks 8] [--seed 1]``; the 2,000-node run takes minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

from appchain.cli.simulate import internet_config, simulation_genesis
from consensus.simulator import Simulation


def measure(nodes: int, blocks: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    sim_config = internet_config(nodes, blocks, seed)
    sim = Simulation(sim_config, simulation_genesis(sim_config)[1])
    report = sim.run()
    result = sim.topology_report()
    result["safety_violations"] = report["safety_violations"]
    result["roots_agree"] = report["roots_agree"]
    result["target_reached"] = report["target_reached"]
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return result


def _row(result: dict[str, Any]) -> str:
    return (
        f"{result['nodes']:>6} {result['messages_per_node_per_block']:>8} "
        f"{result['bytes_per_node_per_block']:>9} {result['consensus_bytes_per_node_per_block']:>9} "
        f"{result['directory_bytes_per_node_per_block']:>9} "
        f"{result['connections_max']:>4}/{result['bound']:<3} {result['over_bound']:>4} "
        f"{result['propagation_p50']:>6.3f} {result['propagation_p99']:>6.3f} "
        f"{result['finality_p50']:>7.3f} {result['finality_p99']:>7.3f} {result['wall_seconds']:>7}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,2000")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.blocks, args.seed)))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    print(
        f"{'nodes':>6} {'msgs':>8} {'bytes':>9} {'consens.':>9} {'director':>9} "
        f"{'conn/bnd':>8} {'over':>4} {'pr.p50':>6} {'pr.p99':>6} {'fin.p50':>7} {'fin.p99':>7} {'wall s':>7}"
    )
    results = []
    for size in sizes:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.topology",
                "--one",
                str(size),
                "--blocks",
                str(args.blocks),
                "--seed",
                str(args.seed),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(_row(result), flush=True)
        if result["safety_violations"] or not result["roots_agree"] or not result["target_reached"]:
            print(f"  {size} nodes: safety or liveness failed: {result}")
    small, large = results[0], results[-1]

    def ratio(key: str) -> str:
        return f"{large[key] / max(small[key], 1e-9):.2f}"

    print(
        f"per node and block ({large['nodes']} ÷ {small['nodes']} nodes; messages and bytes sent + received):"
    )
    print(f"  bytes, all:           {ratio('bytes_per_node_per_block')}  (aim ≤ 3)")
    print(f"  bytes, consensus:     {ratio('consensus_bytes_per_node_per_block')}")
    directory = ratio("directory_bytes_per_node_per_block")
    print(f"  bytes, directory:     {directory}  (every node keeps every proof)")
    print(f"  finality p50:         {ratio('finality_p50')}  (aim ≤ 1.5)")
    print(f"  finality p99:         {ratio('finality_p99')}  (aim ≤ 1.5)")
    print(f"  propagation p99:      {ratio('propagation_p99')}")
    print(f"  to every node, p50:   {ratio('propagation_to_all_p50')}")
    print(f"  connections over the bound, all sizes: {sum(r['over_bound'] for r in results)}  (aim 0)")
    print(f"  by kind at {large['nodes']}: {large['bytes_by_kind_per_node_per_block']}")


if __name__ == "__main__":
    main()
