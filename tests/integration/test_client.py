"""``websockify-client`` end to end (issue #20 §2): a TCP client, the real client command,
the real proxy command, a real TCP target; all on loopback."""

from __future__ import annotations

import functools
import hashlib
import random
import socket
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import ConnRecord, ScriptedBackend, TCPBackend
from tests.support.process import ProxyProcess

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SIZE = 64 * MiB


@functools.cache
def payload(seed: int) -> bytes:
    """64 MiB of reproducible noise, made on first use (not at collection)."""
    return random.Random(seed).randbytes(SIZE)


class DuplexBackend(TCPBackend):
    """Reads up to ``SIZE`` bytes while sending ``payload(2)``, then closes; keeps the count and
    digest of what it read (the relay has no half-close, so neither side shuts down early).
    The start-up probe of the client's port makes a first, empty session."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[int, str]] = []

    def handle(self, rec: ConnRecord) -> None:
        sender = threading.Thread(target=send_quietly, args=(rec.sock, payload(2)), daemon=True)
        sender.start()
        self.received.append(read_digest(rec.sock, SIZE))
        sender.join(4 * TIMEOUT)
        rec.sock.close()


def send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the peer went away: the reading side's count tells the test


def read_digest(sock: socket.socket, limit: int) -> tuple[int, str]:
    """How many bytes ``sock`` yields until EOF or ``limit``, and their sha256."""
    digest, count = hashlib.sha256(), 0
    while count < limit:
        chunk = sock.recv(min(1 << 20, limit - count))
        if not chunk:
            break
        digest.update(chunk)
        count += len(chunk)
    return count, digest.hexdigest()


def start_client(tmp_path: Path, url: str, *args: str) -> ProxyProcess:
    workdir = tmp_path / "client"
    workdir.mkdir(exist_ok=True)
    return ProxyProcess(workdir, 0, *args, command=[sys.executable, "-m", "proxy.client"],
                        positionals=["127.0.0.1:{port}", url])


def no_traceback(process: ProxyProcess) -> None:
    assert "Traceback" not in process.stderr(), process.stderr()


def test_64_mib_each_way_through_client_and_proxy_arrive_byte_exact(
        start_proxy: StartProxy, tmp_path: Path) -> None:
    with DuplexBackend() as backend:
        proxy = start_proxy(backend.port)
        with start_client(tmp_path, f"ws://127.0.0.1:{proxy.port}/") as client:
            with socket.create_connection(("127.0.0.1", client.port), timeout=4 * TIMEOUT) as tcp:
                sender = threading.Thread(target=tcp.sendall, args=(payload(1),), daemon=True)
                sender.start()
                got = read_digest(tcp, SIZE)
                sender.join(4 * TIMEOUT)
                assert tcp.recv(1) == b""  # the target's close reaches the TCP client
            assert backend.wait_connections(2)[1].closed.wait(TIMEOUT)
            assert backend.received[-1] == (SIZE, hashlib.sha256(payload(1)).hexdigest())
            assert got == (SIZE, hashlib.sha256(payload(2)).hexdigest())
            line = client.wait_for_log("closed by server")
            assert line.endswith(": closed by server: 1000 Target closed")
        no_traceback(client)


def test_an_rfb_banner_reaches_a_raw_tcp_client(
        start_proxy: StartProxy, tmp_path: Path) -> None:
    with ScriptedBackend(b"RFB 003.008\n") as backend:
        proxy = start_proxy(backend.port)
        with start_client(tmp_path, f"ws://127.0.0.1:{proxy.port}/") as client:
            with socket.create_connection(("127.0.0.1", client.port), timeout=TIMEOUT) as tcp:
                got = b""
                while len(got) < 12:
                    chunk = tcp.recv(12 - len(got))
                    assert chunk, got
                    got += chunk
                assert got == b"RFB 003.008\n"
                client.wait_for_log(": connected to ws://127.0.0.1:")
        no_traceback(client)
