"""Genesis: the document a chain starts from, its validation, hash and the genesis state.

- :mod:`genesis.presets`: chain parameters for ``mainnet`` (PROTOCOL.md's numbers) and ``devnet``;
- :mod:`genesis.document`: the document: its fields, normalised form, hash, supply and writer;
- :mod:`genesis.parse`: a file's JSON read field by field, every problem kept with its JSON path;
- :mod:`genesis.load`: loading a file is parse, then check: the genesis events run through the
  state rules (:mod:`genesis.build`), every problem reported at its JSON path;
- :mod:`genesis.build`: block 0, built by applying the genesis events through the normal
  ``apply_block`` path, and the export of a state back into a genesis document;
- :mod:`genesis.devnet`: deterministic development networks (keys marked unsafe).
"""
