"""Appends dev-chain blocks forever, reporting each one after it is written (for test_crash).

Usage: python -m tests.crash_writer HOME SEED. Prints ``written <height> <block hash hex>``
after every append returns, flushed, so the test knows what the node claimed to have written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from appchain.cli.devchain import DevChainGenerator
from appchain.home.home import Home
from genesis.devnet import load_dev_accounts, load_dev_nodes


def main() -> None:
    home = Home(Path(sys.argv[1]))
    with home.open_chain() as chain:
        print(f"opened {chain.height} {chain.state.block_hash.hex()}", flush=True)
        accounts = load_dev_accounts(home.keys_path / "dev-accounts.json")
        nodes = load_dev_nodes(home.keys_path / "dev-nodes.json")
        generator = DevChainGenerator(chain, accounts, sys.argv[2], events_per_block=30, nodes=nodes)
        while True:
            pending = generator.next_block()
            print(f"written {pending.block.header.height} {pending.block_hash.hex()}", flush=True)


if __name__ == "__main__":
    main()
