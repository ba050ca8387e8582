"""The pure parts of ``--admin-path`` (issue #21): routing, the access rules, close bodies."""

from __future__ import annotations

import base64
import ipaddress
from email.message import Message
from http import HTTPStatus

import pytest

from proxy.serve import admin
from proxy.settings import Settings

SETTINGS = Settings(admin_path="/admin", admin_auth="op:s3cret")


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize("target, rest", [
    ("/admin", ""), ("/admin/sessions", "/sessions"), ("/admin/sessions?x=1", "/sessions"),
    ("/admin/sessions/3/close#f", "/sessions/3/close"), ("/administrator", None),
    ("/", None), ("/other/admin", None),
])
def test_route(target: str, rest: str | None) -> None:
    assert admin.route(SETTINGS, target) == rest
    assert admin.route(Settings(), target) is None  # off by default


def test_route_of_the_root_path() -> None:
    assert admin.route(Settings(admin_path="/"), "/sessions") == "/sessions"


@pytest.mark.parametrize("peer, allowed", [
    (("127.0.0.1", 5), True), (("127.9.9.9", 5), True), (("::1", 5, 0, 0), True),
    (("::ffff:127.0.0.1", 5, 0, 0), True), (("10.0.0.1", 5), False), (("::2", 5, 0, 0), False),
    (("fe80::1%eth0", 5, 0, 2), False), (("not an address", 5), False),
    ("", True),  # --unix-listen: the socket file's mode decides
])
def test_default_allow_list_is_loopback(peer: object, allowed: bool) -> None:
    assert admin.peer_allowed(SETTINGS, peer) is allowed


def test_allow_list_replaces_the_default() -> None:
    settings = Settings(admin_path="/a", admin_auth="u:p",
                        admin_allow=(ipaddress.ip_network("10.0.0.0/8"),))
    assert admin.peer_allowed(settings, ("10.2.3.4", 1))
    assert not admin.peer_allowed(settings, ("127.0.0.1", 1))


@pytest.mark.parametrize("authorization, valid", [
    (basic(b"op:s3cret"), True), (basic(b"op:s3cret "), False), (basic(b"op:"), False),
    (basic(b"op"), False), (basic(b"OP:s3cret"), False), ("Basic !!", False),
    ("basic " + basic(b"op:s3cret")[6:], False), (None, False), ("", False),
])
def test_credentials(authorization: str | None, valid: bool) -> None:
    assert admin.credentials_valid(SETTINGS, authorization) is valid


def headers(**fields: str) -> Message:
    message = Message()
    for name, value in fields.items():
        message[name.replace("_", "-")] = value
    return message


def test_refusals_in_order() -> None:
    ok = basic(b"op:s3cret")
    outside = ("10.0.0.1", 1)
    refused = admin.refusal(SETTINGS, outside, "GET", headers(Authorization=ok))
    assert refused is not None and refused.status == HTTPStatus.FORBIDDEN
    refused = admin.refusal(SETTINGS, ("127.0.0.1", 1), "POST", headers())
    assert refused is not None and refused.status == HTTPStatus.UNAUTHORIZED
    assert refused.headers == (("WWW-Authenticate", 'Basic realm="websockify admin"'),)
    marked = admin.refusal(SETTINGS, ("127.0.0.1", 1), "GET", headers(X_Websockify_Admin="1"))
    assert marked is not None and marked.status == HTTPStatus.UNAUTHORIZED
    assert marked.headers == ()  # the page asks itself: no browser prompt
    refused = admin.refusal(SETTINGS, ("127.0.0.1", 1), "POST", headers(Authorization=ok))
    assert refused is not None and refused.status == HTTPStatus.FORBIDDEN
    assert admin.refusal(SETTINGS, ("127.0.0.1", 1), "GET", headers(Authorization=ok)) is None
    assert admin.refusal(SETTINGS, ("127.0.0.1", 1), "POST", headers(
        Authorization=ok, X_Websockify_Admin="1")) is None


@pytest.mark.parametrize("body, parameters", [
    (b"", (1001, "Closed by an operator")), (b"  \n", (1001, "Closed by an operator")),
    (b'{"code": 1000}', (1000, "Closed by an operator")),
    (b'{"code": 3000}', (3000, "Closed by an operator")),
    (b'{"code": 4999, "reason": ""}', (4999, "")),
    ('{"reason": "' + "é" * 61 + 'x"}', (1001, "é" * 61 + "x")),  # 123 bytes
])
def test_close_parameters(body: bytes | str, parameters: tuple[int, str]) -> None:
    data = body.encode() if isinstance(body, str) else body
    assert admin.close_parameters(data) == parameters


@pytest.mark.parametrize("body", [
    b'{"code": 1001}', b'{"code": 2999}', b'{"code": 5000}', b'{"code": 4000.0}',
    '{"reason": "' + "é" * 62 + '"}', b"null", b'{"code": null}',
])
def test_close_parameters_refused(body: bytes | str) -> None:
    data = body.encode() if isinstance(body, str) else body
    answer = admin.close_parameters(data)
    assert isinstance(answer, admin.Answer) and answer.status == HTTPStatus.BAD_REQUEST
