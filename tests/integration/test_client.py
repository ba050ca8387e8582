"""``websockify-client`` end to end (issue #20 §2): a TCP client, the real client command,
the real proxy command, a real TCP target; all on loopback."""

from __future__ import annotations

import functools
import hashlib
import random
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import ConnRecord, EchoBackend, ScriptedBackend, TCPBackend
from tests.support.process import ProxyProcess, clean_env

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
    The start-up probe of the client's port makes one more, empty session."""

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


def push_and_read(tcp: socket.socket) -> tuple[int, str]:
    """Send ``payload(1)`` while reading ``SIZE`` bytes back; what came (size, sha256)."""
    sender = threading.Thread(target=tcp.sendall, args=(payload(1),), daemon=True)
    sender.start()
    got = read_digest(tcp, SIZE)
    sender.join(4 * TIMEOUT)
    return got


def assert_target_read_payload(backend: DuplexBackend, timeout: float) -> None:
    """Both sessions ended at the target: the port probe's, empty, and the test's, which
    read ``payload(1)`` whole. Which reaches the target first is not fixed (websockify
    forks per connection; one run in two put the test's first), so no index is assumed."""
    assert all(conn.closed.wait(timeout) for conn in backend.wait_connections(2))
    assert sorted(backend.received) == sorted([
        (0, hashlib.sha256(b"").hexdigest()), (SIZE, hashlib.sha256(payload(1)).hexdigest())])


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from a TCP socket (an EOF before them fails the test)."""
    got = b""
    while len(got) < size:
        chunk = sock.recv(size - len(got))
        assert chunk, got
        got += chunk
    return got


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
                got = push_and_read(tcp)
                assert tcp.recv(1) == b""  # the target's close reaches the TCP client
            assert_target_read_payload(backend, TIMEOUT)
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
                assert recv_exactly(tcp, 12) == b"RFB 003.008\n"
                client.wait_for_log(": connected to ws://127.0.0.1:")
        no_traceback(client)


def stdio_client(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "proxy.client", "-", url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env(), start_new_session=True)


def test_dash_relays_stdin_and_stdout_and_exits_0_when_stdin_ends(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port)
    client = stdio_client(f"ws://127.0.0.1:{proxy.port}/")
    try:
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(b"over the pipes\n")
        client.stdin.flush()
        assert client.stdout.readline() == b"over the pipes\n"
        client.stdin.close()  # EOF: the client closes the WebSocket with 1000
        assert client.wait(TIMEOUT) == 0
        assert client.stdout.read() == b""
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(TIMEOUT)
        err = client.stderr.read().decode() if client.stderr else ""
        for pipe in (client.stdin, client.stdout, client.stderr):
            if pipe is not None:
                pipe.close()
    assert err.splitlines()[-1].endswith("stdio: closed by us: 1000 Target closed"), err


def test_dash_delivers_the_banner_then_exits_0_when_the_server_closes(
        start_proxy: StartProxy) -> None:
    with ScriptedBackend(b"RFB 003.008\n") as backend:
        proxy = start_proxy(backend.port)
        client = stdio_client(f"ws://127.0.0.1:{proxy.port}/")  # its stdin stays open
        try:
            status = client.wait(2 * TIMEOUT)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(TIMEOUT)
            out, err = client.communicate(timeout=TIMEOUT)
    assert (status, out) == (0, b"RFB 003.008\n"), err
    assert err.decode().splitlines()[-1] == "stdio: closed by server: 1000 Target closed"


def test_dash_reports_a_refused_handshake_in_one_line_and_exits_1(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--auth-plugin", "BasicHTTPAuth",
                        "--auth-source", "user:pw")
    url = f"ws://127.0.0.1:{proxy.port}/"
    done = subprocess.run([sys.executable, "-m", "proxy.client", "-", url],
                          stdin=subprocess.DEVNULL, capture_output=True, env=clean_env(),
                          timeout=2 * TIMEOUT)
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode() == f"stdio: {url}: handshake refused: 401 Unauthorized\n"
