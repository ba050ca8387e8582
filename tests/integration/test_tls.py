"""wss:// against the real command: certificates, --ssl-only, client certs, SIGHUP, --ssl-target."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.certs import KEY_PASSWORD, Pki, TLSEchoBackend, peer_common_name
from tests.support.process import ProxyProcess
from tests.support.wsclient import WSClient, upgrade_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_backend(pki: Pki) -> Iterator[TLSEchoBackend]:
    with TLSEchoBackend(pki.server_context()) as backend:
        yield backend
    assert not backend.errors, backend.errors


def wss_echo(port: int, context: ssl.SSLContext, payload: bytes = b"over wss") -> str | None:
    """One binary round trip with websocket-client over wss://; returns the server's CN."""
    ws = websocket.create_connection(f"wss://127.0.0.1:{port}/", timeout=TIMEOUT,
                                     sslopt={"context": context})
    try:
        ws.send_binary(payload)
        assert ws.recv() == payload
        assert isinstance(ws.sock, ssl.SSLSocket)
        return peer_common_name(ws.sock)
    finally:
        ws.close()


def plain_refused(port: int) -> bool:
    """Whether a plain upgrade request is closed without any answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(upgrade_request())
        try:
            return sock.recv(100) == b""
        except ConnectionResetError:
            return True


def failed_start(proxy: ProxyProcess) -> tuple[int, str]:
    status = proxy.wait(2 * TIMEOUT)
    return status, proxy.stderr()


def test_wss_and_ws_on_one_port_with_a_combined_pem(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", str(pki.combined))
    assert wss_echo(proxy.port, pki.client_context()) == "proxy.test"
    with WSClient.connect(proxy.port) as client:
        client.send_binary(b"plain")
        assert client.recv_bytes(5) == b"plain"
    lines = proxy.wait_for_lines(6)
    assert lines[:4] == [
        "WebSocket server settings:",
        f"  - Listen on 127.0.0.1:{proxy.port}",
        "  - SSL/TLS support",
        f"  - proxying from 127.0.0.1:{proxy.port} to 127.0.0.1:{echo_backend.port}",
    ]
    proxy.wait_for_log("127.0.0.1: SSL/TLS (wss://) WebSocket connection")
    proxy.wait_for_log("127.0.0.1: Plain non-SSL (ws://) WebSocket connection")


def test_the_default_self_pem_in_the_working_directory_enables_wss(
        tmp_path: Path, echo_backend: EchoBackend, pki: Pki) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(pki.combined, workdir / "self.pem")
    with ProxyProcess(workdir, echo_backend.port) as proxy:
        assert wss_echo(proxy.port, pki.client_context()) == "proxy.test"
        assert "  - SSL/TLS support" in proxy.stderr_lines()


def test_without_self_pem_only_plain_is_served_and_tls_clients_are_told_why(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki) -> None:
    proxy = start_proxy(echo_backend.port)
    assert "  - No SSL/TLS support (no cert file)" in proxy.stderr_lines()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        wss_echo(proxy.port, pki.client_context())
    proxy.wait_for_log(f"127.0.0.1: SSL connection but '{proxy.tmp_path / 'self.pem'}' not found")


def test_ssl_only_refuses_plain_connections(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki) -> None:
    proxy = start_proxy(echo_backend.port, "--ssl-only", "--cert", str(pki.combined))
    assert plain_refused(proxy.port)
    assert wss_echo(proxy.port, pki.client_context()) == "proxy.test"
    lines = proxy.stderr_lines()
    assert lines[2:4] == ["  - SSL/TLS support", "  - Deny non-SSL/TLS connections"]
    proxy.wait_for_log("127.0.0.1: non-SSL connection received but disallowed")


def test_ssl_only_without_a_certificate_is_a_usage_error(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--ssl-only", wait_for_port=False)
    status, err = failed_start(proxy)
    assert status == 2
    assert err.endswith("websockify: error: SSL only and self.pem not found\n")


def test_a_separate_encrypted_key_with_its_password(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", str(pki.server_cert), "--key",
                        str(pki.encrypted_key), "--key-password", KEY_PASSWORD)
    assert wss_echo(proxy.port, pki.client_context()) == "proxy.test"


@pytest.mark.parametrize(("args", "message"), [
    (["--key-password", "wrong"], "cannot load the private key in '{key}' "
                                  "(wrong --key-password or no usable private key)"),
    ([], "the private key in '{key}' is encrypted: give --key-password"),
])
def test_a_bad_key_password_stops_the_start_naming_the_file(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki,
        args: list[str], message: str) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", str(pki.server_cert), "--key",
                        str(pki.encrypted_key), *args, wait_for_port=False)
    status, err = failed_start(proxy)
    assert status == 1
    assert message.format(key=pki.encrypted_key) in err
    assert "Traceback" not in err


def test_an_explicit_missing_certificate_stops_the_start(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", "missing.pem", wait_for_port=False)
    status, err = failed_start(proxy)
    assert status == 1
    assert f"cannot read certificate file '{proxy.tmp_path / 'missing.pem'}'" in err


def test_verify_client_accepts_only_certificates_from_the_ca(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", str(pki.combined), "--verify-client",
                        "--cafile", str(pki.ca))
    assert wss_echo(proxy.port, pki.client_context(pki.alice)) == "proxy.test"
    for cert in (None, pki.mallory):
        with pytest.raises((ssl.SSLError, ConnectionError, websocket.WebSocketException)):
            wss_echo(proxy.port, pki.client_context(cert))
    proxy.wait_for_log("handler exception: [SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE]")
    proxy.wait_for_log("handler exception: [SSL: CERTIFICATE_VERIFY_FAILED]")


def test_sighup_reloads_the_certificate_for_new_connections(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki, tmp_path: Path) -> None:
    cert = tmp_path / "renewable.pem"
    shutil.copy(pki.combined, cert)
    proxy = start_proxy(echo_backend.port, "--cert", str(cert))
    old = websocket.create_connection(f"wss://127.0.0.1:{proxy.port}/", timeout=TIMEOUT,
                                      sslopt={"context": pki.client_context()})
    try:
        shutil.copy(pki.other_server, cert)
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_for_log(f"SIGHUP: reloaded TLS certificate {cert}")
        assert wss_echo(proxy.port, pki.client_context()) == "renewed.test"
        old.send_binary(b"still here")
        assert old.recv() == b"still here"
        assert isinstance(old.sock, ssl.SSLSocket)
        assert peer_common_name(old.sock) == "proxy.test"
    finally:
        old.close()
    cert.write_text("broken\n")
    proxy.send_signal(signal.SIGHUP)
    proxy.wait_for_log("TLS certificate not reloaded, keeping the previous one: ")
    assert wss_echo(proxy.port, pki.client_context()) == "renewed.test"


def test_ssl_target_with_a_private_ca(
        start_proxy: StartProxy, tls_backend: TLSEchoBackend, pki: Pki) -> None:
    proxy = start_proxy(tls_backend.port, "--ssl-target", "--ssl-target-cafile", str(pki.ca))
    with WSClient.connect(proxy.port) as client:
        client.send_binary(b"to a tls target")
        assert client.recv_bytes(15) == b"to a tls target"
    assert isinstance(tls_backend.connection().sock, ssl.SSLSocket)
    assert (f"  - proxying from 127.0.0.1:{proxy.port} to 127.0.0.1:{tls_backend.port} "
            "(using SSL)") in proxy.stderr_lines()
    proxy.wait_for_log(f"connecting to: 127.0.0.1:{tls_backend.port} (using SSL)")


def test_ssl_target_verification_failure_closes_1011_with_the_reason(
        start_proxy: StartProxy, tls_backend: TLSEchoBackend) -> None:
    proxy = start_proxy(tls_backend.port, "--ssl-target")  # system CAs: the test CA is unknown
    with WSClient.connect(proxy.port) as client:
        close = client.recv_close()
        assert (close.code, close.reason) == (1011, "Failed to connect to downstream server")
        client.reply_close(close)
    line = proxy.wait_for_log("Failed to connect to ")
    # websockify's line (spec §7.6); the _ssl.c line number depends on the Python build.
    assert (f"] Failed to connect to 127.0.0.1:{tls_backend.port}: [SSL: CERTIFICATE_VERIFY_FAILED]"
            " certificate verify failed: unable to get local issuer certificate (_ssl.c:") in line


def test_ssl_target_no_verify_is_for_lab_targets(
        start_proxy: StartProxy, tls_backend: TLSEchoBackend) -> None:
    proxy = start_proxy(tls_backend.port, "--ssl-target", "--ssl-target-no-verify")
    with WSClient.connect(proxy.port) as client:
        client.send_binary(b"lab")
        assert client.recv_bytes(3) == b"lab"
