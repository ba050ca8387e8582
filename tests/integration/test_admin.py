"""``--admin-path`` on the real command: listing live sessions, closing them, and every way
into the API and every refusal (issue #21, docs/operations.rst)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from wsproto.events import BytesMessage

from proxy.serve import admin
from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.process import ProxyProcess, clean_env
from tests.support.waiting import wait_for
from tests.support.wsclient import HTTPResponse, WSClient, raw_http

pytestmark = pytest.mark.integration

ADMIN = ("--admin-path", "/admin", "--admin-auth-source", "op:s3cret")
GOOD = "Basic " + base64.b64encode(b"op:s3cret").decode()


def admin_request(port: int, method: str, path: str, *, auth: str | None = GOOD,
                  body: bytes = b"", headers: str = "X-Websockify-Admin: 1\r\n") -> HTTPResponse:
    lines = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
    if auth is not None:
        lines += f"Authorization: {auth}\r\n"
    if method == "POST":
        lines += f"Content-Length: {len(body)}\r\n"
    return raw_http(port, (lines + "Connection: close\r\n\r\n").encode() + body)


def sessions(proxy: ProxyProcess) -> list[dict[str, Any]]:
    response = admin_request(proxy.port, "GET", "/admin/sessions")
    assert response.status == 200, response
    assert response.header("Content-Type") == "application/json"
    listed = json.loads(response.body)["sessions"]
    assert isinstance(listed, list)
    return listed


def session_to(client: WSClient, payload: bytes = b"hello") -> None:
    """One echoed message, so that every figure of the session has moved."""
    client.send_binary(payload)
    event = client.next_event()
    assert isinstance(event, BytesMessage) and event.data == payload


# -- listing --------------------------------------------------------------------------------


def test_lists_a_session_with_its_figures(start_proxy: StartProxy,
                                          echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN)
    assert sessions(proxy) == []
    with WSClient.connect(proxy.port, subprotocols=["binary"]) as client:
        session_to(client, b"12345")
        [live] = sessions(proxy)
        assert isinstance(live["id"], int) and live["id"] >= 1
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", live["time"])
        assert (live["client"], live["peer"]) == ("127.0.0.1", "127.0.0.1")
        assert live["peer_port"] == client.sock.getsockname()[1]
        assert live["target"] == f"127.0.0.1:{echo_backend.port}"
        assert (live["token"], live["subprotocol"], live["tls"]) == (None, "binary", False)
        # 5 payload bytes in one masked frame of 11; 5 back from the target.
        assert (live["bytes_from_client"], live["bytes_from_target"]) == (11, 5)
        assert (live["messages_from_client"], live["messages_from_target"]) == (1, 1)
        assert 0 <= live["idle"] <= live["duration"] < TIMEOUT
        assert proxy.proc is not None and live["pid"] == proxy.proc.pid
    assert_eventually_empty(proxy)


def assert_eventually_empty(proxy: ProxyProcess) -> None:
    """A session leaves the list when its relay ends."""
    wait_for(lambda: sessions(proxy) == [], "the closed session to leave the list")


def token_file(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "tokens"
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


@pytest.mark.parametrize("show, shown", [((), "abcd"), (("--admin-show-tokens",), "abcdefgh")])
def test_tokens_are_cut_to_four_characters_unless_asked(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path,
        show: tuple[str, ...], shown: str) -> None:
    tokens = token_file(tmp_path, f"abcdefgh: 127.0.0.1:{echo_backend.port}")
    proxy = start_proxy(0, *ADMIN, *show, "--token-plugin", "TokenFile", "--token-source", tokens,
                        positionals=["127.0.0.1:{port}"])
    with WSClient.connect(proxy.port, "/?token=abcdefgh") as client:
        session_to(client)
        [live] = sessions(proxy)
        assert live["token"] == shown


# -- closing --------------------------------------------------------------------------------


def test_closing_one_session_leaves_the_other(start_proxy: StartProxy,
                                              echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN, "--metrics-path", "/metrics")
    with WSClient.connect(proxy.port) as first, WSClient.connect(proxy.port) as second:
        session_to(first)
        session_to(second)
        one, other = sessions(proxy)
        body = json.dumps({"code": 4001, "reason": "maintenance"}).encode()
        response = admin_request(proxy.port, "POST", f"/admin/sessions/{one['id']}/close",
                                 body=body)
        assert (response.status, json.loads(response.body)) == (200, {"closed": [one["id"]]})
        close = first.recv_close()
        assert (close.code, close.reason) == (4001, "maintenance")
        first.reply_close(close)
        assert first.wait_eof() == b""
        session_to(second, b"still here")
        line = proxy.wait_for_log("admin: closing session")
        assert line.endswith(
            f"127.0.0.1: admin: closing session {one['id']} (client 127.0.0.1, target "
            f"127.0.0.1:{echo_backend.port}): 4001 maintenance")
        assert [live["id"] for live in sessions_after_close(proxy)] == [other["id"]]
    metrics = raw_http(proxy.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n").body.decode()
    assert 'websockify_close_codes_total{code="4001"} 1' in metrics


def sessions_after_close(proxy: ProxyProcess) -> list[dict[str, Any]]:
    """The list once the closed session's relay has ended (bounded wait)."""
    def at_most_one() -> list[dict[str, Any]] | None:
        listed = sessions(proxy)
        return listed if len(listed) <= 1 else None
    return wait_for(at_most_one, "the closed session to leave the list")


def test_close_without_a_body_is_1001_from_an_operator(start_proxy: StartProxy,
                                                       echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN)
    with WSClient.connect(proxy.port) as client:
        session_to(client)
        [live] = sessions(proxy)
        response = admin_request(proxy.port, "POST", f"/admin/sessions/{live['id']}/close")
        assert response.status == 200
        close = client.recv_close()
        assert (close.code, close.reason) == (1001, "Closed by an operator")
        # Asked twice: the session is already closing, nothing more is closed.
        again = admin_request(proxy.port, "POST", f"/admin/sessions/{live['id']}/close")
        assert json.loads(again.body) in ({"closed": []}, {"error": "no such session"})


def test_bulk_close_by_token_and_by_target(start_proxy: StartProxy, tmp_path: Path) -> None:
    with EchoBackend() as vnc_a, EchoBackend() as vnc_b:
        tokens = token_file(tmp_path, f"a1: 127.0.0.1:{vnc_a.port}", f"a2: 127.0.0.1:{vnc_a.port}",
                            f"b1: 127.0.0.1:{vnc_b.port}")
        proxy = start_proxy(0, *ADMIN, "--token-plugin", "TokenFile", "--token-source",
                            tokens, positionals=["127.0.0.1:{port}"])
        with WSClient.connect(proxy.port, "/?token=a1") as a1, \
                WSClient.connect(proxy.port, "/?token=a2") as a2, \
                WSClient.connect(proxy.port, "/?token=b1") as b1:
            for client in (a1, a2, b1):
                session_to(client)
            ids = {live["token"]: live["id"] for live in sessions(proxy)}
            by_token = admin_request(proxy.port, "POST", "/admin/sessions/close?token=b1")
            assert json.loads(by_token.body) == {"closed": [ids["b1"]]}
            assert b1.recv_close().code == 1001
            by_target = admin_request(proxy.port, "POST",
                                      f"/admin/sessions/close?target=127.0.0.1:{vnc_a.port}")
            assert json.loads(by_target.body) == {"closed": sorted([ids["a1"], ids["a2"]])}
            assert (a1.recv_close().code, a2.recv_close().code) == (1001, 1001)
            nothing = admin_request(proxy.port, "POST", "/admin/sessions/close?token=zz")
            assert (nothing.status, json.loads(nothing.body)) == (200, {"closed": []})


@pytest.mark.parametrize("body", [
    b'{"code": 1001}', b'{"code": 2999}', b'{"code": 5000}', b'{"code": "4000"}',
    b'{"code": true}', b'{"reason": "' + b"x" * 124 + b'"}', b'{"reason": 5}',
    b'{"code": 4000, "why": "x"}', b"[4000]", b"not json", b"\xff\xfe",
])
def test_a_bad_close_body_is_400_and_closes_nothing(start_proxy: StartProxy,
                                                    echo_backend: EchoBackend,
                                                    body: bytes) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN)
    with WSClient.connect(proxy.port) as client:
        session_to(client)
        [live] = sessions(proxy)
        response = admin_request(proxy.port, "POST", f"/admin/sessions/{live['id']}/close",
                                 body=body)
        assert response.status == 400, response
        assert "error" in json.loads(response.body)
        session_to(client, b"untouched")


def test_a_body_too_large_or_chunked_is_400_and_ends_the_connection(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN)
    auth = f"Authorization: {GOOD}\r\nX-Websockify-Admin: 1\r\n"
    for framing, body in ((f"Content-Length: {admin.MAX_BODY + 1}\r\n", b"x" * 1025),
                          ("Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n")):
        request = (f"POST /admin/sessions/1/close HTTP/1.1\r\nHost: x\r\n{auth}{framing}"
                   f"\r\n").encode() + body
        response = raw_http(proxy.port, request)  # no Connection: close: the server ends it
        assert response.status == 400
        assert response.header("Connection") == "close"


def test_the_json_record_of_a_closed_session(start_proxy: StartProxy,
                                             echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN, "--log-format", "json")
    with WSClient.connect(proxy.port, subprotocols=["binary"]) as client:
        session_to(client)
        [live] = sessions(proxy)
        body = b'{"code": 4002, "reason": "bye"}'
        admin_request(proxy.port, "POST", f"/admin/sessions/{live['id']}/close", body=body)
        client.reply_close(client.recv_close())
    line = proxy.wait_for_log('"close_code":4002')
    record = json.loads(line)
    assert (record["close_reason"], record["closed_by"], record["subprotocol"]) == (
        "bye", "server", "binary")
    assert (record["peer_port"], record["target"]) == (live["peer_port"], live["target"])
    admin_line = json.loads(proxy.wait_for_log("admin: closing session"))
    assert admin_line["logger"] == "proxy.admin"


def test_unknown_session_and_unknown_paths(start_proxy: StartProxy,
                                           echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN)
    unknown = admin_request(proxy.port, "POST", "/admin/sessions/999/close")
    assert (unknown.status, json.loads(unknown.body)) == (404, {"error": "no such session"})
    assert admin_request(proxy.port, "GET", "/admin/other").status == 404
    wrong = admin_request(proxy.port, "POST", "/admin/sessions")
    assert (wrong.status, wrong.header("Allow")) == (405, "GET, HEAD")
    assert admin_request(proxy.port, "GET", "/admin/sessions/1/close").status == 405
    assert admin_request(proxy.port, "POST", "/admin/sessions/close").status == 400
    # A POST anywhere else is still websockify's 501.
    other = admin_request(proxy.port, "POST", "/elsewhere")
    assert (other.status, other.reason) == (501, "Unsupported method ('POST')")


# -- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Basic " + base64.b64encode(b"op:wrong").decode(),
                                  "Basic " + base64.b64encode(b"op").decode(),
                                  "Basic !!!", "Bearer s3cret"])
def test_without_the_credentials_401(start_proxy: StartProxy, echo_backend: EchoBackend,
                                     auth: str | None) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN)
    response = admin_request(proxy.port, "GET", "/admin/sessions", auth=auth, headers="")
    assert response.status == 401
    assert response.header("WWW-Authenticate") == 'Basic realm="websockify admin"'
    assert b"sessions" not in response.body
    # A script marking its requests (the diagnostics page) gets no browser prompt.
    marked = admin_request(proxy.port, "GET", "/admin/sessions", auth=auth)
    assert (marked.status, marked.header("WWW-Authenticate")) == (401, None)
    proxy.wait_for_log("127.0.0.1: admin: refused GET /admin/sessions: 401 credentials required")


def test_a_peer_outside_admin_allow_is_refused_even_with_credentials(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN, "--admin-allow", "10.0.0.0/8")
    response = admin_request(proxy.port, "GET", "/admin/sessions")
    assert (response.status, json.loads(response.body)) == (403, {"error": "peer not allowed"})
    proxy.wait_for_log("127.0.0.1: admin: refused GET /admin/sessions: 403 peer not allowed")


def test_a_forwarded_address_never_opens_the_api(start_proxy: StartProxy,
                                                 echo_backend: EchoBackend) -> None:
    """Access is judged by the TCP peer: a trusted proxy naming an allowed client does not
    make a refused peer allowed."""
    proxy = start_proxy(echo_backend.port, *ADMIN, "--admin-allow", "10.0.0.0/8",
                        "--trusted-proxy", "127.0.0.1")
    response = admin_request(proxy.port, "GET", "/admin/sessions",
                             headers="X-Forwarded-For: 10.1.2.3\r\n")
    assert response.status == 403


def test_the_allow_list_admits_the_peer(start_proxy: StartProxy,
                                        echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN, "--admin-allow", "10.0.0.0/8",
                        "--admin-allow", "127.0.0.1")
    assert admin_request(proxy.port, "GET", "/admin/sessions").status == 200


def test_a_post_needs_the_admin_header(start_proxy: StartProxy,
                                       echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, *ADMIN)
    with WSClient.connect(proxy.port) as client:
        session_to(client)
        [live] = sessions(proxy)
        for header in ("", "X-Websockify-Admin: 0\r\n"):
            response = admin_request(proxy.port, "POST", f"/admin/sessions/{live['id']}/close",
                                     headers=header)
            assert (response.status, json.loads(response.body)) == (
                403, {"error": "X-Websockify-Admin: 1 required"})
        session_to(client, b"untouched")
    proxy.wait_for_log(f"127.0.0.1: admin: refused POST /admin/sessions/{live['id']}/close: "
                       f"403 X-Websockify-Admin: 1 required")


def test_web_auth_credentials_do_not_open_the_api(start_proxy: StartProxy,
                                                  echo_backend: EchoBackend,
                                                  tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    proxy = start_proxy(echo_backend.port, *ADMIN, "--web", str(web), "--web-auth",
                        "--auth-plugin", "BasicHTTPAuth", "--auth-source", "viewer:vnc")
    viewer = "Basic " + base64.b64encode(b"viewer:vnc").decode()
    assert admin_request(proxy.port, "GET", "/admin/sessions", auth=viewer).status == 401
    assert admin_request(proxy.port, "GET", "/admin/sessions").status == 200


@pytest.mark.parametrize("args, message", [
    (("--admin-path", "/admin"), "--admin-path needs --admin-auth-source USER:PASSWORD"),
    (("--admin-path", "/admin", "--admin-auth-source", "nocolon"),
     "--admin-path needs --admin-auth-source USER:PASSWORD"),
    (("--admin-auth-source", "op:pw"), "You must use --admin-path to use --admin-auth-source"),
    (("--admin-path", "/m", "--admin-auth-source", "op:pw", "--metrics-path", "/m"),
     "--admin-path must differ from --metrics-path and --health-path"),
])
def test_refuses_to_start_without_credentials(args: tuple[str, ...], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "proxy", "127.0.0.1:0", "127.0.0.1:1", *args],
                          capture_output=True, text=True, env=clean_env(), timeout=TIMEOUT)
    assert done.returncode == 2
    assert done.stderr.rstrip("\n").endswith(f"error: {message}")


# -- --workers ------------------------------------------------------------------------------


def sessions_in_both_workers(proxy: ProxyProcess, clients: list[WSClient],
                             workers: list[int]) -> list[dict[str, Any]]:
    """Open sessions until both workers relay at least one (whichever worker accepts
    a connection is the kernel's choice), at most 16; the listing once they do."""
    listed: list[dict[str, Any]] = []
    while len(clients) < 16:
        client = WSClient.connect(proxy.port)
        clients.append(client)
        session_to(client)
        listed = sessions(proxy)
        if {live["pid"] for live in listed} == set(workers):
            return listed
    raise AssertionError(f"16 sessions, not in both workers {workers}: {listed}")


def test_workers_list_and_close_sessions_of_both(start_proxy: StartProxy,
                                                 echo_backend: EchoBackend) -> None:
    from tests.integration.test_workers import two_workers
    proxy = start_proxy(echo_backend.port, *ADMIN, "--workers", "2")
    workers = two_workers(proxy)
    clients: list[WSClient] = []
    try:
        listed = sessions_in_both_workers(proxy, clients, workers)
        assert len(listed) == len(clients)
        # Every worker answers with every session, whichever of them takes the request.
        for _ in range(6):
            assert [live["id"] for live in sessions(proxy)] == [live["id"] for live in listed]
        port_of = {client.sock.getsockname()[1]: client for client in clients}
        by_id = {live["id"]: port_of[live["peer_port"]] for live in listed}
        first_of = {live["pid"]: live["id"] for live in reversed(listed)}
        for pid in workers:  # close one session of each worker
            session_id = first_of[pid]
            body = json.dumps({"code": 4000 + session_id % 1000, "reason": f"w{pid}"}).encode()
            response = admin_request(proxy.port, "POST", f"/admin/sessions/{session_id}/close",
                                     body=body)
            assert json.loads(response.body) == {"closed": [session_id]}
            close = by_id[session_id].recv_close()
            assert (close.code, close.reason) == (4000 + session_id % 1000, f"w{pid}")
        for session_id, client in by_id.items():
            if session_id not in first_of.values():
                session_to(client, b"untouched")
        rest = sorted(set(by_id) - set(first_of.values()))
        bulk = admin_request(proxy.port, "POST",
                             f"/admin/sessions/close?target=127.0.0.1:{echo_backend.port}")
        assert json.loads(bulk.body) == {"closed": rest}
        for session_id in rest:
            assert by_id[session_id].recv_close().code == 1001
    finally:
        for client in clients:
            client.close_socket()
