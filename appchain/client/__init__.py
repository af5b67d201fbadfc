"""appchain.client (docstring written in a later step)."""
