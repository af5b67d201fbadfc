"""appchain.cli (docstring written in a later step)."""
