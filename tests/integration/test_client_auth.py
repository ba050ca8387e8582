"""``websockify-client`` against our own server with TLS, tokens and Basic auth, and its
``--once`` exit status (issue #20 §2). Real commands on loopback, a throw-away private CA."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.certs import Pki
from tests.support.process import ProxyProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


def once(tmp_path: Path, started: list[ProxyProcess], url: str, *args: str) -> ProxyProcess:
    """``websockify-client --once`` started; returns once it listens (the port probe of
    ``ProxyProcess`` would use up its one connection)."""
    workdir = tmp_path / f"client{len(started)}"
    workdir.mkdir()
    client = ProxyProcess(workdir, 0, "--once", *args,
                          command=[sys.executable, "-m", "proxy.client"],
                          positionals=["127.0.0.1:{port}", url], wait_for_port=False)
    started.append(client.start())
    client.wait_for_log("websockify-client: ")
    return client


def echo_through(client: ProxyProcess, payload: bytes = b"through the client") -> bytes:
    """Send ``payload`` over TCP to the client's port and read as many bytes back."""
    with socket.create_connection(("127.0.0.1", client.port), timeout=TIMEOUT) as tcp:
        tcp.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = tcp.recv(len(payload) - len(got))
            if not chunk:
                break
            got += chunk
        return got


def refused(client: ProxyProcess) -> tuple[bytes, int]:
    """Connect, read what arrives before the close, and the client's exit status."""
    with socket.create_connection(("127.0.0.1", client.port), timeout=TIMEOUT) as tcp:
        data = tcp.recv(100)
    return data, client.wait(2 * TIMEOUT)


def test_wss_with_a_private_ca_and_once_exits_0_after_a_normal_close(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", str(pki.combined), "--ssl-only")
    client = once(tmp_path, clients, f"wss://127.0.0.1:{proxy.port}/", "--cafile", str(pki.ca))
    assert echo_through(client) == b"through the client"
    assert client.wait(2 * TIMEOUT) == 0
    proxy.wait_for_log("127.0.0.1: SSL/TLS (wss://) WebSocket connection")


def test_wss_is_verified_by_default_and_insecure_only_by_name(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", str(pki.combined), "--ssl-only")
    url = f"wss://127.0.0.1:{proxy.port}/"
    client = once(tmp_path, clients, url)  # the system store does not know the test CA
    assert refused(client) == (b"", 1)
    line = client.wait_for_log("cannot connect")
    assert line.startswith("127.0.0.1:")
    assert f": {url}: cannot connect: TLS: [SSL: CERTIFICATE_VERIFY_FAILED]" in line
    insecure = once(tmp_path, clients, url, "--insecure")
    assert echo_through(insecure) == b"through the client"


def test_a_client_certificate_is_presented_with_cert(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", str(pki.combined), "--ssl-only",
                        "--verify-client", "--cafile", str(pki.ca))
    url = f"wss://127.0.0.1:{proxy.port}/"
    client = once(tmp_path, clients, url, "--cafile", str(pki.ca), "--cert", str(pki.alice))
    assert echo_through(client) == b"through the client"
    without = once(tmp_path, clients, url, "--cafile", str(pki.ca))
    assert refused(without) == (b"", 1)


def test_basic_credentials_from_the_url_and_a_refusal_in_one_line(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    proxy = start_proxy(echo_backend.port, "--auth-plugin", "BasicHTTPAuth",
                        "--auth-source", "user:s3cr:et")
    good = once(tmp_path, clients, f"ws://user:s3cr%3Aet@127.0.0.1:{proxy.port}/")
    assert echo_through(good) == b"through the client"
    url = f"ws://user:nope@127.0.0.1:{proxy.port}/"
    bad = once(tmp_path, clients, url)
    assert refused(bad) == (b"", 1)
    assert bad.wait_for_log("handshake refused").endswith(
        f": {url}: handshake refused: 401 Unauthorized")


def test_a_header_and_a_token_in_the_url_reach_the_server(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    (tmp_path / "tokens").write_text(f"vnc1: 127.0.0.1:{echo_backend.port}\n")
    proxy = start_proxy(0, "--token-plugin", "TokenFile", "--token-source", "../tokens",
                        "--auth-plugin", "ExpectOrigin", "--auth-source", "https://o.test",
                        positionals=["127.0.0.1:{port}"])
    url = f"ws://127.0.0.1:{proxy.port}/?token=vnc1"
    good = once(tmp_path, clients, url, "--header", "Origin: https://o.test")
    assert echo_through(good) == b"through the client"
    no_origin = once(tmp_path, clients, url)
    assert refused(no_origin) == (b"", 1)
    assert no_origin.wait_for_log("handshake refused").endswith(
        ": handshake refused: 403 Invalid Origin")
    wrong = once(tmp_path, clients, f"ws://127.0.0.1:{proxy.port}/?token=nope",
                 "--header", "Origin: https://o.test")
    assert refused(wrong) == (b"", 1)
    assert wrong.wait_for_log("handshake refused").endswith(
        ": handshake refused: 404 Token not found")
