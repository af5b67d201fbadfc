"""Signature facades: Ed25519 (accounts, node keys) and BLS12-381 (aggregate network signatures).

The rest of the code calls these small functions and never a crypto library directly, so a
backend can be swapped and cross-checked against a reference in tests.
"""
