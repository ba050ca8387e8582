"""proxy.transport.tls and the handler's TLS
paths: an in-process ProxyServer and real TLS clients."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from wsproto import ConnectionType, WSConnection

from proxy.transport import tls
from proxy.errors import StartupError
from proxy.serve.server import ProxyServer
from proxy.settings import Settings
from tests.conftest import TIMEOUT, scaled
from tests.support.backends import EchoBackend
from tests.support.certs import KEY_PASSWORD, Pki, TLSEchoBackend, peer_common_name
from tests.support.wsclient import HandshakeRejected, WSClient, upgrade_request
from tests.support.inprocess import running
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def echo() -> Iterator[EchoBackend]:
    with EchoBackend() as backend:
        yield backend
    assert not backend.errors, backend.errors


def tls_settings(pki: Pki, **overrides: object) -> Settings:
    values: dict[str, object] = {"listen_host": "127.0.0.1", "target_host": "127.0.0.1",
                                 "target_port": 9, "cert": str(pki.combined),
                                 "cert_required": True}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def wss(port: int, context: ssl.SSLContext, path: str = "/",
        headers: tuple[tuple[str, str], ...] = ()) -> WSClient:
    """A WebSocket client over TLS (the raw wsproto client of tests.support)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise
    client = WSClient(sock, WSConnection(ConnectionType.CLIENT))
    try:
        client.handshake(path, (), headers, "127.0.0.1")
    except BaseException:
        sock.close()
        raise
    return client


def wait_idle(server: ProxyServer) -> None:
    wait_for(lambda: server.live_connections == 0, "the connections to end")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "kind"), [
    (b"\x16", tls.Sniff.TLS), (b"\x80", tls.Sniff.TLS), (b"G", tls.Sniff.PLAIN),
    (b"\x15", tls.Sniff.PLAIN), (b"", tls.Sniff.NOTHING),
])
def test_the_first_byte_decides_between_tls_and_plain(first: bytes, kind: tls.Sniff) -> None:
    assert tls.classify(first) is kind


def test_sniff_peeks_without_consuming_and_gives_up_at_the_deadline() -> None:
    a, b = socket.socketpair()
    with a, b:
        started = time.monotonic()
        assert tls.sniff(a, 0.1) is tls.Sniff.NOTHING
        assert 0.05 < time.monotonic() - started < TIMEOUT
        b.sendall(b"\x16\x03\x01")
        assert tls.sniff(a, TIMEOUT) is tls.Sniff.TLS
        assert a.recv(3) == b"\x16\x03\x01"


# -- building the server context -----------------------------------------------------------


def test_a_missing_default_certificate_means_plain_only(tmp_path: Path) -> None:
    settings = Settings(cert=str(tmp_path / "self.pem"))
    assert tls.build_server_context(settings) is None
    assert tls.build_server_context(Settings()) is None


def test_an_explicit_missing_certificate_is_a_startup_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.pem"
    with pytest.raises(StartupError, match=f"cannot read certificate file '{path}'"):
        tls.build_server_context(Settings(cert=str(path), cert_required=True))


def test_a_separate_key_and_cert_load(pki: Pki) -> None:
    context = tls.build_server_context(Settings(cert=str(pki.server_cert),
                                                key=str(pki.server_key), cert_required=True))
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE


def test_an_encrypted_key_loads_with_its_password(pki: Pki) -> None:
    settings = Settings(cert=str(pki.server_cert), key=str(pki.encrypted_key),
                        key_password=KEY_PASSWORD, cert_required=True)
    assert tls.build_server_context(settings) is not None


def test_a_wrong_key_password_is_a_startup_error_naming_the_key(pki: Pki) -> None:
    settings = Settings(cert=str(pki.server_cert), key=str(pki.encrypted_key),
                        key_password="wrong", cert_required=True)
    with pytest.raises(StartupError, match=f"'{pki.encrypted_key}'.*wrong --key-password"):
        tls.build_server_context(settings)


def test_an_encrypted_key_without_password_fails_instead_of_prompting(pki: Pki) -> None:
    settings = Settings(cert=str(pki.server_cert), key=str(pki.encrypted_key),
                        cert_required=True)
    with pytest.raises(StartupError, match="is encrypted: give --key-password"):
        tls.build_server_context(settings)


def test_a_file_without_a_certificate_is_a_startup_error(tmp_path: Path, pki: Pki) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(StartupError, match=f"no usable PEM certificate in '{garbage}'"):
        tls.build_server_context(Settings(cert=str(garbage), cert_required=True))
    # A certificate without its key: the error names the file the key was looked for in.
    with pytest.raises(StartupError, match=f"private key in '{pki.server_cert}'"):
        tls.build_server_context(Settings(cert=str(pki.server_cert), cert_required=True))


def test_ssl_version_ciphers_and_verify_client_are_applied(pki: Pki) -> None:
    context = tls.build_server_context(Settings(
        cert=str(pki.combined), cert_required=True, ssl_version="tlsv1_3",
        ssl_ciphers="ECDHE+AESGCM", verify_client=True, cafile=str(pki.ca)))
    assert context is not None
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3
    assert context.verify_mode is ssl.CERT_REQUIRED
    # Python's secure defaults stay (websockify replaces the option bits, spec §7.6).
    assert context.options & ssl.OP_NO_COMPRESSION
    with pytest.raises(StartupError, match="--ssl-ciphers 'NO-SUCH-CIPHER'"):
        tls.build_server_context(Settings(cert=str(pki.combined), cert_required=True,
                                          ssl_ciphers="NO-SUCH-CIPHER"))
    with pytest.raises(StartupError, match="--cafile"):
        tls.build_server_context(Settings(cert=str(pki.combined), cert_required=True,
                                          cafile=str(pki.combined) + ".missing"))


def test_the_target_context_follows_the_options(pki: Pki) -> None:
    assert tls.build_target_context(Settings()) is None
    default = tls.build_target_context(Settings(ssl_target=True))
    assert default is not None and default.check_hostname
    assert default.verify_mode is ssl.CERT_REQUIRED
    lab = tls.build_target_context(Settings(ssl_target=True, ssl_target_no_verify=True))
    assert lab is not None and not lab.check_hostname and lab.verify_mode is ssl.CERT_NONE
    with pytest.raises(StartupError, match="--ssl-target-cafile"):
        tls.build_target_context(Settings(ssl_target=True, ssl_target_cafile="/no/such/ca"))


def test_a_bad_certificate_fails_before_binding(tmp_path: Path) -> None:
    settings = Settings(listen_host="127.0.0.1", cert=str(tmp_path / "x.pem"), cert_required=True)
    with pytest.raises(StartupError):
        ProxyServer(settings)


# -- connections ---------------------------------------------------------------------------


def test_ws_and_wss_share_one_port(pki: Pki, echo: EchoBackend,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with running(tls_settings(pki, target_port=echo.port)) as server:
        with wss(server.port, pki.client_context()) as secure:
            assert isinstance(secure.sock, ssl.SSLSocket)
            assert secure.sock.version() in ("TLSv1.2", "TLSv1.3")
            secure.echo(b"tls payload")
        with WSClient.connect(server.port) as plain:
            plain.echo(b"plain payload")
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.endswith("127.0.0.1: SSL/TLS (wss://) WebSocket connection") for m in messages)
    assert any(m.endswith("127.0.0.1: Plain non-SSL (ws://) WebSocket connection")
               for m in messages)


def test_tls_1_2_clients_are_served_unless_ssl_version_asks_for_1_3(
        pki: Pki, echo: EchoBackend) -> None:
    client = pki.client_context()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with running(tls_settings(pki, target_port=echo.port)) as server:
        with wss(server.port, client) as ws:
            assert ws.sock.version() == "TLSv1.2"  # type: ignore[attr-defined]
            ws.echo(b"tls payload")
    with running(tls_settings(pki, target_port=echo.port, ssl_version="tlsv1_3")) as server:
        with pytest.raises(ssl.SSLError):
            wss(server.port, client).close_socket()
        with wss(server.port, pki.client_context()) as ws:
            assert ws.sock.version() == "TLSv1.3"  # type: ignore[attr-defined]


def test_ssl_only_refuses_plain_connections_with_websockifys_line(
        pki: Pki, echo: EchoBackend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with running(tls_settings(pki, target_port=echo.port, ssl_only=True)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as plain:
            plain.sendall(upgrade_request())
            try:
                answer = plain.recv(100)
            except ConnectionResetError:  # websockify's close with unread data: a reset
                answer = b""
            assert answer == b""
        with wss(server.port, pki.client_context()) as ws:
            ws.echo(b"tls payload")
    assert "127.0.0.1: non-SSL connection received but disallowed" in caplog.messages


def test_a_tls_client_without_a_certificate_file_is_closed_with_websockifys_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    missing = tmp_path / "self.pem"
    settings = Settings(listen_host="127.0.0.1", target_host="127.0.0.1", target_port=9,
                        cert=str(missing))
    context = ssl.create_default_context()
    with running(settings) as server:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            wss(server.port, context).close_socket()
        wait_idle(server)
    assert f"127.0.0.1: SSL connection but '{missing}' not found" in caplog.messages


def test_a_stalled_tls_handshake_ends_within_the_deadline_and_blocks_nobody(
        pki: Pki, echo: EchoBackend, caplog: pytest.LogCaptureFixture) -> None:
    """A client sending half a ClientHello is dropped after request_timeout; others go on."""
    caplog.set_level(logging.INFO)
    with running(tls_settings(pki, target_port=echo.port, request_timeout=0.5)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as stalled:
            started = time.monotonic()
            stalled.sendall(b"\x16\x03\x01\x02\x00\x01")
            with wss(server.port, pki.client_context()) as ws:
                ws.echo(b"tls payload")
            waited = time.monotonic() - started
            assert waited < scaled(0.5), "the second client waited for the first"
            assert stalled.recv(100) == b""
            assert 0.4 < time.monotonic() - started < 0.5 + TIMEOUT / 5
    assert any("TLS handshake not completed within the deadline" in m for m in caplog.messages)


def test_verify_client_accepts_a_ca_signed_certificate_only(
        pki: Pki, echo: EchoBackend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = tls_settings(pki, target_port=echo.port, verify_client=True, cafile=str(pki.ca))
    with running(settings) as server:
        with wss(server.port, pki.client_context(pki.alice)) as ws:
            ws.echo(b"tls payload")
        for cert in (None, pki.mallory):
            # TLS 1.3: the client finishes first and learns of the refusal on its next read.
            with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
                wss(server.port, pki.client_context(cert)).close_socket()
        wait_idle(server)
    errors = [m for m in caplog.messages if m.startswith("handler exception: ")]
    assert any("PEER_DID_NOT_RETURN_A_CERTIFICATE" in m for m in errors), errors
    assert any("CERTIFICATE_VERIFY_FAILED" in m for m in errors), errors


@pytest.mark.parametrize("spoof", ["SSL_CLIENT_S_DN_CN", "ssl_client_s_dn_cn",
                                   "Ssl_Client_S_Dn_Cn", "sSL_cLIENT_s_dN_cN"])
def test_client_cert_cn_auth_uses_the_verified_certificate_not_headers(
        pki: Pki, echo: EchoBackend, spoof: str) -> None:
    settings = tls_settings(pki, target_port=echo.port, verify_client=True, cafile=str(pki.ca),
                            auth_plugin="ClientCertCNAuth", auth_source="alice carol")
    with running(settings) as server:
        with wss(server.port, pki.client_context(pki.alice)) as ws:
            ws.echo(b"tls payload")
        # bob's certificate is valid but not listed; claiming to be alice does not help.
        with pytest.raises(HandshakeRejected) as info:
            wss(server.port, pki.client_context(pki.bob), headers=((spoof, "alice"),))
        assert info.value.status == 403
        with pytest.raises(HandshakeRejected) as info:
            WSClient.connect(server.port, extra_headers=[(spoof, "alice")])
        assert info.value.status == 403


def test_open_connections_keep_their_certificate_across_a_reload(
        pki: Pki, echo: EchoBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cert = tmp_path / "cert.pem"
    shutil.copy(pki.combined, cert)
    with running(tls_settings(pki, target_port=echo.port, cert=str(cert))) as server:
        with wss(server.port, pki.client_context()) as old:
            assert peer_common_name(old.sock) == "proxy.test"  # type: ignore[arg-type]
            shutil.copy(pki.other_server, cert)
            assert server.server_tls.reload()
            with wss(server.port, pki.client_context()) as new:
                assert peer_common_name(new.sock) == "renewed.test"  # type: ignore[arg-type]
                new.echo(b"tls payload")
            old.echo(b"tls payload")
            cert.write_text("broken\n")
            assert not server.server_tls.reload()
            with wss(server.port, pki.client_context()) as after:
                assert peer_common_name(after.sock) == "renewed.test"  # type: ignore[arg-type]
    assert not [m for m in caplog.messages if m.startswith("Reloaded")]  # the runner logs (#16)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("TLS certificate not reloaded, keeping the previous one: ")
               for m in warnings), warnings


def test_no_descriptor_outlives_its_tls_connection(pki: Pki, echo: EchoBackend) -> None:
    with running(tls_settings(pki, target_port=echo.port, request_timeout=0.3)) as server:
        wait_idle(server)
        before = open_fds() - echo.accepted  # the echo backend keeps its sockets until stop
        for _ in range(10):
            with wss(server.port, pki.client_context()) as ws:
                ws.echo(b"tls payload")
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as bad:
                bad.sendall(b"\x16\x03\x01\x00\x05hello")  # not a ClientHello
                assert bad.recv(100) is not None
        wait_idle(server)
        assert echo.accepted == 10
        assert open_fds() - echo.accepted == before


# -- --ssl-target ----------------------------------------------------------------------------


@contextmanager
def tls_echo(context: ssl.SSLContext) -> Iterator[TLSEchoBackend]:
    with TLSEchoBackend(context) as backend:
        yield backend
    assert not backend.errors, backend.errors


def test_ssl_target_reaches_a_tls_backend_signed_by_a_private_ca(
        pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with tls_echo(pki.server_context()) as backend:
        settings = Settings(listen_host="127.0.0.1", target_host="127.0.0.1",
                            target_port=backend.port, ssl_target=True,
                            ssl_target_cafile=str(pki.ca))
        with running(settings) as server, WSClient.connect(server.port) as client:
            client.echo(b"tls payload")
            assert isinstance(backend.connection().sock, ssl.SSLSocket)
    assert any(m.endswith(f"connecting to: 127.0.0.1:{backend.port} (using SSL)")
               for m in caplog.messages)


@pytest.mark.parametrize("trust", ["system", "private-ca"])
def test_a_target_certificate_failing_verification_closes_1011(
        pki: Pki, caplog: pytest.LogCaptureFixture, trust: str) -> None:
    caplog.set_level(logging.INFO)
    with tls_echo(pki.server_context(pki.foreign_server)) as backend:
        settings = Settings(listen_host="127.0.0.1", target_host="127.0.0.1",
                            target_port=backend.port, ssl_target=True,
                            ssl_target_cafile=str(pki.ca) if trust == "private-ca" else None)
        with running(settings) as server, WSClient.connect(server.port) as client:
            close = client.recv_close()
            assert (close.code, close.reason) == (1011, "Failed to connect to downstream server")
            client.reply_close(close)
    assert any(f"Failed to connect to 127.0.0.1:{backend.port}: [SSL: CERTIFICATE_VERIFY_FAILED]"
               in m for m in caplog.messages), caplog.messages


def test_ssl_target_no_verify_accepts_any_certificate(pki: Pki) -> None:
    with tls_echo(pki.server_context(pki.foreign_server)) as backend:
        settings = Settings(listen_host="127.0.0.1", target_host="127.0.0.1",
                            target_port=backend.port, ssl_target=True, ssl_target_no_verify=True)
        with running(settings) as server, WSClient.connect(server.port) as client:
            client.echo(b"tls payload")


# -- options ---------------------------------------------------------------------------------


def test_tls_options_map_onto_settings_with_absolute_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy.process.cli import parse_cli

    monkeypatch.chdir(tmp_path)
    default = parse_cli(["1", "h:2"])
    assert default.cert == str(tmp_path / "self.pem") and not default.cert_required
    assert not default.ssl_target and default.ssl_version == "default"
    settings = parse_cli(["--cert", "c.pem", "--key", "k.pem", "--key-password", "pw",
                          "--ssl-version", "tlsv1_3", "--ssl-ciphers", "HIGH", "--verify-client",
                          "--cafile", "ca.pem", "--ssl-target", "--ssl-target-cafile", "t.pem",
                          "1", "h:2"])
    assert settings.cert == str(tmp_path / "c.pem") and settings.cert_required
    assert settings.key == str(tmp_path / "k.pem") and settings.key_password == "pw"
    assert (settings.ssl_version, settings.ssl_ciphers) == ("tlsv1_3", "HIGH")
    assert settings.verify_client and settings.cafile == str(tmp_path / "ca.pem")
    assert settings.ssl_target and settings.ssl_target_cafile == str(tmp_path / "t.pem")
    assert parse_cli(["--key", "k.pem", "1", "h:2"]).cert_required


@pytest.mark.parametrize(("argv", "message"), [
    (["--ssl-target-cafile", "ca.pem"], "You must use --ssl-target to use --ssl-target-cafile"),
    (["--ssl-target-no-verify"], "You must use --ssl-target to use --ssl-target-no-verify"),
    (["--ssl-target", "--ssl-target-no-verify", "--ssl-target-cafile", "ca.pem"],
     "--ssl-target-cafile and --ssl-target-no-verify exclude each other"),
])
def test_target_tls_options_need_ssl_target(argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.process.cli import parse_cli

    with pytest.raises(SystemExit) as info:
        parse_cli([*argv, "1", "h:2"])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith(f"websockify: error: {message}\n")
