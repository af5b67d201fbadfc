"""Building simulations: a devnet genesis with one node per simulated service node.

The simulator itself (:mod:`consensus.simulator`) only needs a genesis state and keys; this module
makes them the way ``appchain genesis new`` does (deterministic dev keys, devnet parameters with
the simulation's ``block_time_ms``), so the simulated chain runs exactly the rules a devnet runs.
:func:`internet_config` is the network of ``appchain simulate --internet`` and ``bench.topology``.
"""

from __future__ import annotations

import msgspec

from consensus.simulator import Faults, SimConfig, SimGenesis, Simulation
from consensus.topology import Topology
from consensus.uptime import UptimeRules
from genesis.build import create_genesis_state
from genesis.devnet import create_devnet_genesis
from genesis.document import Genesis
from genesis.presets import DEVNET


def simulation_genesis(config: SimConfig) -> tuple[Genesis, SimGenesis]:
    """The devnet genesis document of a simulation, and what the simulator starts from."""
    params = msgspec.structs.replace(DEVNET, block_time=config.block_time_ms)
    genesis, nodes, _ = create_devnet_genesis(config.nodes, f"sim-{config.seed}", users=0, params=params)
    state, _ = create_genesis_state(genesis)
    start = SimGenesis(genesis.chain_id, genesis.genesis_time, state, [(n.node, n.bls_secret) for n in nodes])
    return genesis, start


def make_simulation(config: SimConfig) -> Simulation:
    return Simulation(config, simulation_genesis(config)[1])


INTERNET_BLOCK_TIME_MS = 10_000
INTERNET_STAGE_TIMEOUT_MS = 2_000
INTERNET_ROUND_TIMEOUT_MS = 15_000
INTERNET_UPTIME = UptimeRules(interval=300, validity=625, max_skew=25, min_gap=150, grace=60)
"""Mainnet's uptime rules (a proof an hour, 120 s blocks) twelve times faster, as the blocks."""
INTERNET_LOSS = 0.01


def internet_config(nodes: int, blocks: int, seed: int) -> SimConfig:
    """A network at internet scale: the bounded topology (:mod:`consensus.topology`, defaults:
    8 gossip peers dialled, 64 accepted) over the simulated WAN (:class:`consensus.simnet.Wan`:
    six regions 20-300 ms apart one way, 10 % jitter, 100 Mbit/s upload) with 1 % loss; the chain
    at mainnet's shape twelve times faster (10 s blocks, a proof every 30 blocks), a network that
    has run a while (:attr:`~consensus.simulator.SimConfig.steady_proofs`); each block executed
    and each signature verified once for all the nodes."""
    return SimConfig(
        nodes=nodes,
        blocks=blocks,
        seed=seed,
        block_time_ms=INTERNET_BLOCK_TIME_MS,
        stage_timeout_ms=INTERNET_STAGE_TIMEOUT_MS,
        round_timeout_ms=INTERNET_ROUND_TIMEOUT_MS,
        faults=Faults(loss=INTERNET_LOSS),
        verify_once=True,
        apply_once=True,
        topology=Topology(),
        uptime=INTERNET_UPTIME,
        steady_proofs=True,
    )
