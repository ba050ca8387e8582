"""``--web``, ``--file-only``, ``--web-auth`` and ``--diagnostics`` on the real command."""

from __future__ import annotations

import base64
import http.client
import json
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.process import ProxyProcess
from tests.support.wsclient import WSClient

pytestmark = pytest.mark.integration


def get(proxy: ProxyProcess, path: str, method: str = "GET",
        headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, response.reason, dict(response.getheaders()), body
    finally:
        conn.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "app").mkdir(parents=True)
    (root / "index.html").write_text("<p>index</p>")
    (root / "app" / "ui.js").write_text("export {};\n")
    return root


def test_web_serves_files_and_upgrades_on_the_same_port(
        start_proxy: StartProxy, echo_backend: EchoBackend, site: Path) -> None:
    proxy = start_proxy(echo_backend.port, "--web", str(site))
    assert f"  - Web server. Web root: {site}" in proxy.stderr_lines()
    assert get(proxy, "/")[3] == b"<p>index</p>"
    status, _, headers, body = get(proxy, "/app/ui.js")
    assert (status, headers["Content-type"], body) == (200, "text/javascript", b"export {};\n")
    assert get(proxy, "/app")[:2] == (301, "Moved Permanently")
    assert get(proxy, "/nope")[:2] == (404, "File not found")
    with WSClient.connect(proxy.port, "/websockify", subprotocols=["binary"]) as client:
        client.send_binary(b"through the same port")
        assert client.recv_bytes(21) == b"through the same port"


def test_a_symlink_out_of_the_web_root_is_served_only_with_follow_symlinks(
        start_proxy: StartProxy, echo_backend: EchoBackend, site: Path) -> None:
    """#15 Reliability 2: a directory link to / under DIR served /etc/shadow (websockify)."""
    outside = site.parent / "outside"
    outside.mkdir()
    (outside / "shadow").write_text("root:secret\n")
    (site / "etc").symlink_to(outside, target_is_directory=True)
    (site / "home.html").symlink_to(site / "index.html")  # inside: served
    proxy = start_proxy(echo_backend.port, "--web", str(site))
    assert get(proxy, "/etc/shadow")[:2] == (404, "File not found")
    assert get(proxy, "/etc/")[:2] == (404, "File not found")
    assert get(proxy, "/home.html")[3] == b"<p>index</p>"
    following = start_proxy(echo_backend.port, "--web", str(site), "--web-follow-symlinks")
    assert get(following, "/etc/shadow")[::3] == (200, b"root:secret\n")


def test_file_only_banner_and_listing_refusal(
        start_proxy: StartProxy, echo_backend: EchoBackend, site: Path) -> None:
    proxy = start_proxy(echo_backend.port, "--web", str(site), "--file-only")
    assert f"  - Web server (no directory listings). Web root: {site}" in proxy.stderr_lines()
    assert get(proxy, "/app/")[:2] == (404, "Not Found")
    assert get(proxy, "/")[3] == b"<p>index</p>"


def test_a_relative_token_source_still_works_with_web(
        start_proxy: StartProxy, echo_backend: EchoBackend, site: Path, tmp_path: Path) -> None:
    """websockify chdirs into --web and then cannot find 'tokens' (spec §13.14); we do not."""
    (tmp_path / "tokens").write_text(f"vnc: 127.0.0.1:{echo_backend.port}\n")
    proxy = start_proxy(0, "--web", str(site), "--token-plugin", "TokenFile",
                        "--token-source", "../tokens", positionals=["127.0.0.1:{port}"])
    with WSClient.connect(proxy.port, "/?token=vnc") as client:
        client.send_binary(b"ok")
        assert client.recv_bytes(2) == b"ok"
    assert get(proxy, "/")[3] == b"<p>index</p>"


def test_web_auth_with_basic_auth_on_the_real_command(
        start_proxy: StartProxy, echo_backend: EchoBackend, site: Path) -> None:
    proxy = start_proxy(echo_backend.port, "--web", str(site), "--web-auth", "--diagnostics",
                        "--auth-plugin", "BasicHTTPAuth", "--auth-source", "alice:s3cret")
    status, _, headers, _ = get(proxy, "/")
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="Websockify"'
    good = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()}
    assert get(proxy, "/", headers=good)[3] == b"<p>index</p>"
    assert get(proxy, "/websockify/")[0] == 401
    assert get(proxy, "/websockify/", headers=good)[0] == 200


def test_diagnostics_at_a_chosen_path(start_proxy: StartProxy,
                                      echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--diagnostics", "--diagnostics-path", "/diag")
    assert "  - Diagnostics page at /diag/" in proxy.stderr_lines()
    status, _, headers, _ = get(proxy, "/diag")
    assert (status, headers["Location"]) == (301, "/diag/")
    status, _, headers, body = get(proxy, "/diag/")
    assert (status, headers["Content-type"]) == (200, "text/html")
    assert b'<script type="module" src="diagnostics.js"></script>' in body
    config = json.loads(get(proxy, "/diag/config.json")[3])
    assert config["target"] == f"127.0.0.1:{echo_backend.port}"
    assert get(proxy, "/")[:2] == (405, "Method Not Allowed")


def test_without_web_plain_get_and_head_stay_405(proxy_process: ProxyProcess) -> None:
    assert get(proxy_process, "/")[:2] == (405, "Method Not Allowed")
    assert get(proxy_process, "/websockify/", method="HEAD")[:2] == (405, "Method Not Allowed")
