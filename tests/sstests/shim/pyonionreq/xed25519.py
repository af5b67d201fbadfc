"""Placeholder: network-tests import this module but never call it."""


def __getattr__(name):
    raise NotImplementedError(f"pyonionreq.xed25519.{name}: not provided by the sstests shim")
