"""Reading and writing the frames of an event export, and recording a stream, for tests that
tamper with what a node reads."""

from __future__ import annotations

from pathlib import Path

import trio

from appchain.home.exchange import MAGIC


def frames_of(path: Path) -> list[bytes]:
    """The frames of an export file: the header first, then one per block."""
    data = path.read_bytes()
    frames, i = [], len(MAGIC)
    while i < len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        frames.append(data[i + 4 : i + 4 + size])
        i += 4 + size
    return frames


def write_frames(path: Path, frames: list[bytes]) -> Path:
    path.write_bytes(MAGIC + b"".join(len(f).to_bytes(4, "big") + f for f in frames))
    return path


class Recorder(trio.abc.Stream):
    """A stream that records what one side sent (to replay it later)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sent = bytearray()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()
