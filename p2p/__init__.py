"""Transport: authenticated encrypted connections over trio TCP, framing, the peer book,
gossip, and block and state sync requests. It knows bytes and envelopes, not chain rules, and
may import only :mod:`state`'s encoding, hashing, types and crypto facades.

It is built with the networking issue; nothing here is imported until then.
"""
