"""appchain.lab (docstring written in a later step)."""
