"""Building simulations: a devnet genesis with one node per simulated service node.

The simulator itself (:mod:`consensus.simulator`) only needs a genesis state and keys; this module
makes them the way ``appchain genesis new`` does (deterministic dev keys, devnet parameters with
the simulation's ``block_time_ms``), so the simulated chain runs exactly the rules a devnet runs.
"""

from __future__ import annotations

import msgspec

from consensus.simulator import SimConfig, SimGenesis, Simulation
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
