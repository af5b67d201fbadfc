"""Genesis: the document a chain starts from, its validation, hash and the genesis state.

- :mod:`genesis.presets`: chain parameters for ``mainnet`` (PROTOCOL.md's numbers) and ``devnet``;
- :mod:`genesis.document`: the JSON file, validated with every problem reported at its JSON
  path, normalised and hashed;
- :mod:`genesis.build`: block 0, built by applying the genesis events through the normal
  ``apply_block`` path, and the export of a state back into a genesis document;
- :mod:`genesis.devnet`: deterministic development networks (keys marked unsafe).
"""
