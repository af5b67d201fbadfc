"""Where a finalized transfer's CPU goes: ``bench.devnet`` under load, every node sampled by py-spy.

Runs ``python -m bench.devnet`` with the given options, and once its nodes have final blocks and
the load starts, records each node process with ``py-spy record --gil`` (only the thread holding
the GIL: Python CPU, not time spent waiting) for the load window. Then it sums the stacks of all
nodes into categories (the first rule that matches a stack, from the top of :data:`CATEGORIES`),
cross-cutting costs and the top functions by self time. libsodium's verification runs outside the
GIL: its share is the bench's "verifying signatures", printed with the bench's own figures.

py-spy is a measuring tool, not a dependency: ``.venv/bin/pip install py-spy`` first.
Run: ``python -m bench.profile [--rate 900] [--seconds 30] [--base-port 23656] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

Frame = tuple[str, str]
"""(function, file) of one stack frame."""
Stack = list[Frame]
_FRAME = re.compile(r"^(.*) \((.*?):(\d+)\)$")


def has(stack: Stack, func: str | None = None, file: str | None = None) -> bool:
    """Whether a frame of ``stack`` matches both patterns (None matches anything)."""
    return any(
        (func is None or re.search(func, f)) and (file is None or re.search(file, p)) for f, p in stack
    )


Pattern = tuple[str | None, str | None]
"""(function, file) regular expressions a frame must match (None matches anything)."""

CATEGORIES: list[tuple[str, tuple[Pattern, ...]]] = [
    ("signature calls' Python side (Ed25519/BLS)", ((None, r"nacl/|state/crypto/"),)),
    ("LevelDB (plyvel, store)", ((None, r"plyvel|appchain/home/store\.py"),)),
    ("mempool add (state rules)", ((r"^Mempool\.add$", None),)),
    ("mempool re-check after a block", ((r"^Mempool\.(_rebuild|on_block)$", None),)),
    ("producer: template (propose_block)", ((r"_build_template", None),)),
    ("validator: template execution", ((r"_is_valid_template", None),)),
    ("block apply (ledger, state, SMT)", ((r"_try_apply|ChainLedger|execute_block", None),)),
    ("admin submit (JSON, hex, decode)", ((None, r"appchain/node/admin\.py"),)),
    ("decoding frames", ((r"decode", None), (r"_handle_frame", None))),
    ("core: other consensus logic", ((r"NodeCore\.", None),)),
    ("relay / broadcast", ((r"broadcast|_relay|Host\.send|carry_out", None),)),
    ("Noise AEAD", ((None, r"noise/|cryptography/"),)),
    ("p2p per frame/record (host loops, framing)", ((None, r"(^|/)p2p/"),)),
    ("inbox, seen, frame hash", ((r"_on_frame|Inbox\.|handle_slice", None),)),
    ("public RPC, storage, metrics", ((None, r"appchain/rpc/|appchain/messaging/|metrics"),)),
    ("trio scheduler, socket I/O", ((None, r"trio/"),)),
]
"""Each category's patterns: a stack is in the first category whose every pattern a frame matches."""

CROSS: list[tuple[str, str | None, str | None]] = [
    ("hashing (blake3, tagged)", r"blake3|tagged_hasher|digest", r"state/hashing"),
    ("msgspec encode", r"^encode$|Encoder", r"state/encoding"),
    ("msgspec decode", r"decode", r"state/encoding"),
    ("the signature clock's wrapper", r"timed", r"metrics"),
]


def parse(line: str) -> tuple[Stack, int] | None:
    """One line of py-spy's raw (collapsed) output: the stack and its sample count."""
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames: Stack = []
    for part in stack.split(";"):
        match = _FRAME.match(part)
        frames.append((match.group(1), match.group(2)) if match else (part, ""))
    return frames, int(count)


def report(files: list[Path], top: int = 20) -> str:
    total = 0
    categories: Counter[str] = Counter()
    cross: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for path in files:
        for line in path.read_text().splitlines():
            parsed = parse(line)
            if parsed is None:
                continue
            stack, count = parsed
            total += count
            func, file = stack[-1]
            own[f"{func} ({re.sub(r'.*site-packages/', '', file)})"] += count
            name = next(
                (name for name, rule in CATEGORIES if all(has(stack, *pattern) for pattern in rule)), "other"
            )
            categories[name] += count
            for label, func_pattern, file_pattern in CROSS:
                if has(stack, func_pattern, file_pattern):
                    cross[label] += count
    if total == 0:
        return "no samples (was py-spy allowed to attach? run as root or with ptrace rights)"
    lines = [f"samples: {total}, all nodes (Python CPU, GIL held)", "", "categories:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in categories.most_common()]
    lines += ["", "anywhere in the stack:"]
    lines += [f"  {cross[label] / total:6.1%}  {label}" for label, _, _ in CROSS]
    lines += ["", f"self time, top {top}:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=900.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--base-port", type=int, default=23656, help="below 32768")
    parser.add_argument("--out", type=Path, default=None, help="keep py-spy's raw stacks here")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("bench.profile: py-spy is not installed (.venv/bin/pip install py-spy)")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    bench = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.devnet",
            "--seconds",
            str(args.seconds),
            "--rate",
            str(args.rate),
            "--base-port",
            str(args.base_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert bench.stderr is not None and bench.stdout is not None
    for line in bench.stderr:
        if line.startswith("warm"):
            break
    else:
        raise SystemExit(f"bench.profile: bench.devnet stopped before loading (exit {bench.wait()})")
    threading.Thread(target=bench.stderr.read, daemon=True).start()  # never a full pipe
    children = subprocess.run(["pgrep", "-P", str(bench.pid)], check=False, capture_output=True, text=True)
    nodes = children.stdout.split()
    duration = str(max(1, int(args.seconds) - 1))
    spies = [
        subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                pid,
                "-d",
                duration,
                "-r",
                "50",
                "--nonblocking",
                "--gil",
                "-f",
                "raw",
                "-o",
                str(out / f"node-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in nodes
    ]
    started = time.monotonic()
    for spy_process in spies:
        spy_process.wait()
    figures = bench.stdout.read()
    bench.wait()
    print(figures.rstrip())
    took = time.monotonic() - started
    print(f"\npy-spy --gil on {len(nodes)} node processes for {took:.0f} s; stacks in {out}")
    print(report(sorted(out.glob("node-*.txt"))))


if __name__ == "__main__":
    main()
