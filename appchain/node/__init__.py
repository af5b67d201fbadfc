"""appchain.node (docstring written in a later step)."""
