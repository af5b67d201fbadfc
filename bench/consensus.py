"""Consensus costs, measured against a reference in the same run.

Today: verifying one checkpoint certificate (14 of a 20-member quorum, BLS fast aggregate
verify) with the native backend (arkworks) and with the reference (py-ecc), and the ratio. The
CPU time per finalized block in the simulator joins this benchmark with the simulator.

Run: ``python -m bench.consensus [--repeat 20]`` (or ``python bench/consensus.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# ``consensus`` package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from consensus.checkpoint import aggregate_certificate, sign_checkpoint, verify_certificate  # noqa: E402
from state.crypto import bls  # noqa: E402
from state.types import Hash32  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    secrets = [bls.secret_key_from_seed(bytes([i + 1]) * 32) for i in range(20)]
    keys = [bls.public_key(s) for s in secrets]
    block = Hash32(b"\x42" * 32)
    votes = {i: sign_checkpoint(secrets[i], "bench", 8, block) for i in range(14)}
    certificate = aggregate_certificate(8, block, votes, 20)

    timings = {}
    for backend in ("arkworks", "pyecc"):
        previous = bls.use_backend(backend)
        bls._g1.cache_clear()  # decode every key again: a fair, cold verification
        repeat = args.repeat if backend == "arkworks" else max(1, args.repeat // 10)
        started = time.perf_counter()
        for _ in range(repeat):
            verify_certificate(certificate, "bench", keys)
        timings[backend] = (time.perf_counter() - started) / repeat
        bls.use_backend(previous.name)
    print("checkpoint certificate: 14 of 20 signers, one fast aggregate verify")
    print(f"  arkworks (native): {timings['arkworks'] * 1e3:9.2f} ms")
    print(f"  py-ecc (reference): {timings['pyecc'] * 1e3:8.2f} ms")
    print(f"  speed-up          : {timings['pyecc'] / timings['arkworks']:9.1f}x")


if __name__ == "__main__":
    main()
