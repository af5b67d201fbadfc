"""Pulse consensus (sans-IO): quorum selection, the round state machine, checkpoint
certificates, fork choice and finality, and the double-sign guard.

It imports :mod:`state` and nothing above it. It is built by the consensus issue; until then
blocks are appended by the development tools in :mod:`appchain.cli.devchain` without consensus
signatures, and nothing here is imported.
"""
