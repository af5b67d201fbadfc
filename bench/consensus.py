"""Consensus costs, measured against a reference in the same run.

1. CPU time per finalized block in the simulator (30 nodes, zero latency: every node's work,
   all in one process), split into signature work (Ed25519 and BLS sign/verify, timed around
   the facade calls) and everything else;
2. verifying one checkpoint certificate (14 of a 20-member quorum, BLS fast aggregate verify)
   with the native backend (arkworks) and with the reference (py-ecc), and the ratio.

Run: ``python -m bench.consensus [--repeat 20] [--blocks 20]`` (or ``python bench/consensus.py``).
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


class SignatureClock:
    """Accumulates the time spent inside the signature facades while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._saved: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str) -> None:
        original = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - started
                self.calls += 1

        self._saved.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)


def measure_simulation(blocks: int) -> None:
    from appchain.cli.simulate import make_simulation
    from consensus.simulator import SimConfig
    from state.crypto import ed25519

    clock = SignatureClock()
    clock.wrap(ed25519, "verify")
    clock.wrap(ed25519.SigningKey, "sign")
    for name in ("sign", "verify", "fast_aggregate_verify", "aggregate_signatures"):
        clock.wrap(bls, name)
    config = SimConfig(nodes=30, blocks=blocks, seed=1, latency=0.0, jitter=0.0)
    started = time.process_time()
    report = make_simulation(config).run()
    total = time.process_time() - started
    clock.restore()
    final = min(report["final_heights"])
    print(f"simulator, 30 nodes, zero latency: {final} blocks final, {report['messages']} messages")
    print(f"  CPU per finalized block : {total / final * 1e3:9.1f} ms (all 30 nodes)")
    print(f"  of which signatures     : {clock.seconds / final * 1e3:9.1f} ms ({clock.calls // final} calls)")
    print(f"  everything else         : {(total - clock.seconds) / final * 1e3:9.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=20)
    args = parser.parse_args()
    measure_simulation(args.blocks)

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
