"""appchain.home (docstring written in a later step)."""
