"""Where the light client of ``tx`` and ``query`` starts: :class:`Trust`, an entry of the trust
file chosen from ``--genesis``, ``--checkpoint``, ``--chain-id`` and ``--trust-file``, and kept up
to date with what the client verified.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from appchain.cli.arguments import check_integer
from appchain.cli.results import ClientError
from appchain.client.lightclient import RpcSource, Trusted, TrustFile, checkpoint_anchor, genesis_anchor
from appchain.client.wallet import parse_key
from appchain.home.home import default_home
from genesis.document import Genesis
from genesis.load import load_genesis
from state.types import MAX_U64


@dataclass
class Trust:
    """Where a light client starts: an entry of the trust file, chosen from the arguments.

    ``--genesis`` always wins: its own entry (by the genesis hash), never another chain's of the
    same name; else ``--checkpoint`` (its own entry); else the one entry kept for ``--chain-id``.
    """

    file: TrustFile
    anchor: str
    chain_id: str
    kept: Trusted | None
    genesis: Genesis | None
    checkpoint: tuple[int, bytes] | None

    def start(self, source: RpcSource) -> Trusted:
        """The trusted checkpoint to start from: the kept entry, else the checkpoint the user
        named (the only case that asks a node, ``source``, for it), else block 0 of the genesis."""
        if self.kept is not None:
            return self.kept
        if self.checkpoint is not None:
            return Trusted.from_checkpoint(self.chain_id, *self.checkpoint, source)
        assert self.genesis is not None
        return Trusted.from_genesis(self.genesis)

    def keep(self, trusted: Trusted) -> None:
        """Write ``trusted`` (what the client verified) under this anchor when it is newer than
        what the file holds for it; the file's other entries stay as they are."""
        known = self.file.get(self.anchor)
        if known is None or trusted.height > known.height:
            self.file.keep(self.anchor, trusted)
            self.file.save()


def choose_trust(args: argparse.Namespace, command: str) -> Trust:
    """The :class:`Trust` of ``--genesis``, ``--checkpoint``, ``--chain-id`` and ``--trust-file``,
    from those and the trust file alone (no node is asked)."""
    genesis = None if args.genesis is None else load_genesis(args.genesis)
    if genesis is not None and args.chain_id is not None and args.chain_id != genesis.chain_id:
        raise ClientError(f"--chain-id {args.chain_id!r} is not the genesis's chain {genesis.chain_id!r}")
    chain_id = genesis.chain_id if genesis is not None else args.chain_id
    if chain_id is None:
        hint = " (or send with --no-wait)" if command == "tx" else ""
        raise ClientError(
            f"{command}: give --genesis FILE, or --chain-id ID (with --checkpoint or a kept trust file)"
            f", to verify {'finality' if command == 'tx' else 'the answer'}{hint}"
        )
    checkpoint = None
    if args.checkpoint is not None:
        height_text, sep, hash_text = args.checkpoint.partition(":")
        if not sep or not height_text.isascii() or not height_text.isdigit():
            raise ClientError("--checkpoint must be HEIGHT:HASH")
        check_integer(int(height_text), "--checkpoint's height", 0, MAX_U64)
        checkpoint = (int(height_text), parse_key(hash_text, "the checkpoint hash"))
    path = Path(args.trust_file) if args.trust_file else default_home() / "light" / f"{chain_id}.json"
    trust_file = TrustFile.load(path)
    if genesis is not None:
        anchor = genesis_anchor(genesis.hash)
    elif checkpoint is not None:
        anchor = checkpoint_anchor(*checkpoint)
    else:
        kept = trust_file.of_chain(chain_id)
        if not kept:
            raise ClientError(
                f"no trusted checkpoint kept in {path} for chain {chain_id!r}: "
                "give --genesis FILE or --checkpoint HEIGHT:HASH"
            )
        if len(kept) > 1:
            raise ClientError(
                f"{path} keeps {len(kept)} chains named {chain_id!r}: give --genesis FILE or "
                "--checkpoint HEIGHT:HASH to say which"
            )
        ((anchor, _),) = kept.items()
    return Trust(trust_file, anchor, chain_id, trust_file.get(anchor), genesis, checkpoint)
