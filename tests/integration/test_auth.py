"""Auth plugins against the real command (spec §9): Basic, Origin, client CN, user plugins."""

from __future__ import annotations

import base64
import socket
import ssl
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.certs import Pki
from tests.support.wsclient import HandshakeRejected, WSClient, raw_http, upgrade_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


def basic(user_pass: bytes) -> str:
    return "Basic " + base64.b64encode(user_pass).decode()


def status_of(port: int, **headers: str) -> tuple[int, str, str | None]:
    """Status, reason and WWW-Authenticate of an upgrade request with ``headers``."""
    answer = raw_http(port, upgrade_request(headers={k.replace("_", "-"): v
                                                     for k, v in headers.items()}))
    return answer.status, answer.reason, answer.header("WWW-Authenticate")


def test_basic_auth_right_wrong_missing_and_garbled(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--auth-plugin", "BasicHTTPAuth",
                        "--auth-source", "user:s3cr:et")
    realm = 'Basic realm="Websockify"'
    assert status_of(proxy.port, Authorization=basic(b"user:s3cr:et"))[0] == 101
    assert status_of(proxy.port, Authorization=basic(b"user:nope")) == (401, "Unauthorized",
                                                                        realm)
    assert status_of(proxy.port) == (401, "Unauthorized", realm)
    assert status_of(proxy.port, Authorization="Basic %%%garbled") == (403, "Forbidden", None)
    assert status_of(proxy.port, Authorization="Basic dXNlcg") == (403, "Forbidden", None)
    assert status_of(proxy.port, Authorization="Digest x") == (403, "Forbidden", None)
    with WSClient.connect(proxy.port, extra_headers=[("Authorization",
                                                      basic(b"user:s3cr:et"))]) as client:
        client.send_binary(b"authorised")
        assert client.recv_bytes(10) == b"authorised"
    lines = proxy.stderr_lines()
    assert "handler exception: 401 None" in lines
    assert "handler exception: 403 None" in lines


def test_basic_auth_without_a_source_fails_at_startup(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--auth-plugin", "BasicHTTPAuth", wait_for_port=False)
    assert proxy.wait(2 * TIMEOUT) == 1
    assert "BasicHTTPAuth needs --auth-source user:password" in proxy.stderr()


def test_expect_origin_list_wildcards_and_same_origin(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--auth-plugin", "ExpectOrigin", "--auth-source",
                        "https://portal.example https://*.apps.example same-origin")
    port = proxy.port
    assert status_of(port, Origin="https://portal.example")[0] == 101
    assert status_of(port, Origin="https://vnc.apps.example")[0] == 101
    assert status_of(port, Origin="https://127.0.0.1", Host="127.0.0.1")[0] == 101
    assert status_of(port, Origin=f"http://vnc.test:{port}", Host=f"vnc.test:{port}")[0] == 101
    assert status_of(port, Origin="https://evil.example")[:2] == (403, "Invalid Origin")
    assert status_of(port, Origin="https://apps.example")[:2] == (403, "Invalid Origin")
    assert status_of(port, Origin="https://vnc.test", Host="other.test")[:2] == \
        (403, "Invalid Origin")
    assert status_of(port)[:2] == (403, "Invalid Origin")
    assert ("handler exception: 403 Invalid Origin Header: Expected one of "
            "['https://portal.example', 'https://*.apps.example', 'same-origin'], got 'None'"
            ) in proxy.stderr_lines()


def wss_upgrade(port: int, context: ssl.SSLContext, headers: dict[str, str]) -> int:
    """Status of an upgrade over TLS (0 when the TLS layer refused the client)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        try:
            sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        except ssl.SSLError:
            return 0
        with sock:
            try:
                sock.sendall(upgrade_request(headers=dict(headers)))
                head = sock.recv(65536)
            except (ssl.SSLError, ConnectionError):
                return 0  # TLS 1.3: the refusal of the certificate arrives after the handshake
            return int(head.split(b" ", 2)[1]) if head else 0


@pytest.mark.parametrize("spoof", ["SSL_CLIENT_S_DN_CN", "ssl_client_s_dn_cn",
                                   "Ssl_Client_S_Dn_Cn", "sSl_ClIeNt_S_dN_cN"])
def test_client_cert_cn_auth_allows_listed_certificates_and_ignores_spoofed_headers(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki, spoof: str) -> None:
    proxy = start_proxy(echo_backend.port, "--cert", str(pki.combined), "--verify-client",
                        "--cafile", str(pki.ca), "--auth-plugin", "ClientCertCNAuth",
                        "--auth-source", "alice")
    assert wss_upgrade(proxy.port, pki.client_context(pki.alice), {}) == 101
    # bob has a valid certificate but is not listed: claiming alice in a header fails.
    assert wss_upgrade(proxy.port, pki.client_context(pki.bob), {spoof: "alice"}) == 403
    # websockify's bypass (spec §9.2): a plain connection with the lower-case header got 101.
    with pytest.raises(HandshakeRejected) as info:
        WSClient.connect(proxy.port, extra_headers=[(spoof, "alice")])
    assert info.value.status == 403
    # A certificate from another CA with CN alice does not get through TLS at all.
    assert wss_upgrade(proxy.port, pki.client_context(pki.mallory), {}) == 0


def test_a_user_plugin_by_dotted_name_extending_websockifys_module(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path) -> None:
    (tmp_path / "site_auth.py").write_text(
        "import threading\n"
        "from websockify import auth_plugins\n"
        "from websockify.auth_plugins import AuthenticationError\n"
        "class TeamOnly(auth_plugins.BasicHTTPAuth):\n"
        "    '''Basic auth, then only for target port 0 < p < 65536; counts calls.'''\n"
        "    def __init__(self, src=None):\n"
        "        super().__init__(src)\n"
        "        self.lock = threading.Lock()\n"
        "        self.calls = 0\n"
        "    def authenticate(self, headers, target_host, target_port):\n"
        "        with self.lock:\n"
        "            self.calls += 1\n"
        "        super().authenticate(headers, target_host, target_port)\n"
        "        if headers.get('X-Team') != 'blue':\n"
        "            raise AuthenticationError(log_msg='wrong team', response_code=403,\n"
        "                                      response_msg='Team only')\n")
    proxy = start_proxy(echo_backend.port, "--auth-plugin", "site_auth.TeamOnly",
                        "--auth-source", "u:p", env={"PYTHONPATH": str(tmp_path)})
    good = basic(b"u:p")
    assert status_of(proxy.port, Authorization=good, X_Team="blue")[0] == 101
    assert status_of(proxy.port, Authorization=good, X_Team="red")[:2] == (403, "Team only")
    assert status_of(proxy.port, X_Team="blue")[0] == 401
    assert "handler exception: 403 wrong team" in proxy.stderr_lines()


def test_a_basic_auth_subclass_with_a_users_file_starts_and_authenticates(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path) -> None:
    """#18: --auth-source is a users file, not user:password; validate_creds is overridden."""
    (tmp_path / "users").write_text("alice:wonder\nbob:builder\n")
    (tmp_path / "site_users.py").write_text(
        "from websockify.auth_plugins import BasicHTTPAuth\n"
        "class UsersFile(BasicHTTPAuth):\n"
        "    def __init__(self, src=None):\n"
        "        super().__init__(src)\n"
        "        with open(src) as f:\n"
        "            self.users = dict(line.strip().split(':', 1) for line in f)\n"
        "    def validate_creds(self, username, password):\n"
        "        return self.users.get(username) == password\n")
    proxy = start_proxy(echo_backend.port, "--auth-plugin", "site_users.UsersFile",
                        "--auth-source", str(tmp_path / "users"),
                        env={"PYTHONPATH": str(tmp_path)})
    assert status_of(proxy.port, Authorization=basic(b"bob:builder"))[0] == 101
    assert status_of(proxy.port, Authorization=basic(b"alice:wonder"))[0] == 101
    assert status_of(proxy.port, Authorization=basic(b"alice:builder"))[0] == 401
    assert status_of(proxy.port, Authorization=basic(b"carol:wonder"))[0] == 401


def test_auth_plugins_get_the_target_exactly_as_websockify_passes_it(
        start_proxy: StartProxy, tmp_path: Path) -> None:
    """#18: the port as the token plugin returned it (TokenFile: a str); None/None for a
    Unix socket."""
    (tmp_path / "tokens").write_text("tcp: 127.0.0.1:5901\nsock: unix_socket:/run/vnc.sock\n")
    (tmp_path / "site_seen.py").write_text(
        "from websockify.auth_plugins import AuthenticationError\n"
        "class Seen:\n"
        "    def __init__(self, src=None):\n"
        "        pass\n"
        "    def authenticate(self, headers, target_host, target_port):\n"
        "        raise AuthenticationError(log_msg=repr((target_host, target_port)))\n")
    proxy = start_proxy(0, "--token-plugin", "TokenFile", "--token-source", "../tokens",
                        "--auth-plugin", "site_seen.Seen", env={"PYTHONPATH": str(tmp_path)},
                        positionals=["127.0.0.1:{port}"])
    for token in ("tcp", "sock"):
        answer = raw_http(proxy.port, upgrade_request(path=f"/?token={token}"))
        assert answer.status == 403
    lines = proxy.stderr_lines()
    assert "handler exception: 403 ('127.0.0.1', '5901')" in lines
    assert "handler exception: 403 (None, None)" in lines
