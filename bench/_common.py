"""What the benchmarks share: the disk's own fsync rate (the reference figure) and a free port."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def fsyncs_per_second(directory: Path, seconds: float = 1.5) -> float:
    """200-byte append + fsync in a loop: the floor under any durable append on this disk."""
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            count += 1
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
