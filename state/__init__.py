"""The deterministic core of the appchain.

Everything that decides what the chain *is* lives here and nowhere else: named types, the
canonical encoding, hashing and signature facades, events and blocks, the state with its
per-domain rules (ledger and fees, service nodes, obligations and credits, rewards, SNS,
swarms), ``apply_block`` with its effects, and the authenticated sparse Merkle map with proofs.

Rules this package keeps:

- It imports no trio, no plyvel and nothing from the network: it is pure computation, so the
  same log gives the same state root on every machine and in every replay.
- No wall clock, no floats, no iteration over unordered collections, no randomness except
  seeded from chain data.
- An invalid event raises a typed :class:`state.errors.InvalidEvent` and leaves the state
  exactly as it was.
"""
