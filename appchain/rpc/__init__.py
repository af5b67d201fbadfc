"""appchain.rpc (docstring written in a later step)."""
