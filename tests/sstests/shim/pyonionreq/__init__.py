"""Stand-in for `pyonionreq` (oxen-pyonionreq).  network-tests' subaccount.py only does
`from pyonionreq import xed25519` and never calls it; the attribute exists so the import works,
and any use fails loudly."""

from . import xed25519  # noqa: F401
