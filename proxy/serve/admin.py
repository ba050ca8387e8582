"""``--admin-path``: the live sessions as JSON, and closing them (issue #21).

``GET PATH/sessions`` lists the live sessions (``proxy.observe.registry``);
``POST PATH/sessions/ID/close`` closes one and ``POST PATH/sessions/close?token=…`` or
``?target=host:port`` closes every matching one. Access (docs/operations.rst):

1. the TCP peer (never a forwarded address) must be in ``--admin-allow``: else 403;
2. Basic credentials matching ``--admin-auth-source``, compared in constant time
   (``BasicHTTPAuth.validate_creds``): else 401 (``--web-auth`` plays no part);
3. a POST must carry ``X-Websockify-Admin: 1``, which a browser tab cannot send to
   another origin without a preflight (no CSRF): else 403.

Every refusal and every close is logged with the peer address on ``proxy.admin``.
An operator's close goes through the relay's own close path (``CloseRequest``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from proxy.access.auth import BasicHTTPAuth
from proxy.serve.adminsessions import LocalSessions
from proxy.serve.context import RequestContext
from proxy.settings import Settings

log = logging.getLogger("proxy.admin")

#: The header a POST needs (issue #21: no cross-site request from a browser tab).
ADMIN_HEADER = "X-Websockify-Admin"
REALM = ("WWW-Authenticate", 'Basic realm="websockify admin"')
#: The close of an operator without a body (1001 Going Away).
DEFAULT_CODE = 1001
DEFAULT_REASON = "Closed by an operator"
#: Largest close body read; a longer one is refused unread.
MAX_BODY = 1024
#: RFC 6455 §5.5: a Close payload is at most 125 bytes, 2 of them the code.
MAX_REASON = 123
JSON_TYPE = "application/json"

_CLOSE_ONE = re.compile(r"/sessions/([0-9]{1,18})/close")


@dataclass(frozen=True)
class Answer:
    """An admin response: status and JSON body (and headers such as WWW-Authenticate)."""

    status: HTTPStatus
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = field(default=())


def error(status: HTTPStatus, text: str, *headers: tuple[str, str]) -> Answer:
    return Answer(status, {"error": text}, headers)


def route(settings: Settings, target: str) -> str | None:
    """What follows ``--admin-path`` in the request target (``""`` for the path itself),
    or None when the request is not for the admin API."""
    prefix = settings.admin_path
    if prefix is None:
        return None
    path = target.split("?", 1)[0].split("#", 1)[0]
    base = "" if prefix == "/" else prefix
    if path == prefix or path.startswith(base + "/"):
        return path[len(base):]
    return None


def peer_allowed(settings: Settings, peer: Any) -> bool:
    """The TCP peer is in ``--admin-allow``. A ``--unix-listen`` peer has no address:
    the socket file's mode (``--unix-listen-mode``) decides who reaches it."""
    if not isinstance(peer, tuple) or not peer:
        return True
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in settings.admin_allow)


def credentials_valid(settings: Settings, authorization: str | None) -> bool:
    """Basic credentials equal to ``--admin-auth-source`` (constant-time compare)."""
    if not authorization or not authorization.startswith("Basic "):
        return False
    try:
        text = base64.b64decode(authorization[6:], validate=True).decode("ISO-8859-1")
    except (binascii.Error, ValueError):
        return False
    user, sep, password = text.partition(":")
    return bool(sep) and BasicHTTPAuth(settings.admin_auth).validate_creds(user, password)


def refusal(settings: Settings, peer: Any, method: str, headers: Any) -> Answer | None:
    """The access rules, in order; None when the request may go on."""
    if not peer_allowed(settings, peer):
        return error(HTTPStatus.FORBIDDEN, "peer not allowed")
    marked = headers.get(ADMIN_HEADER, "").strip() == "1"
    if not credentials_valid(settings, headers.get("Authorization")):
        # A script that marks its requests (the diagnostics page) asks for credentials
        # itself: a WWW-Authenticate would make the browser prompt in its stead.
        return error(HTTPStatus.UNAUTHORIZED, "credentials required",
                     *(() if marked else (REALM,)))
    if method == "POST" and not marked:
        return error(HTTPStatus.FORBIDDEN, f"{ADMIN_HEADER}: 1 required")
    return None


def close_parameters(body: bytes) -> tuple[int, str] | Answer:
    """The code and reason of a close body (``{"code": …, "reason": …}``, both optional),
    or the 400 for anything else."""
    if not body.strip():
        return DEFAULT_CODE, DEFAULT_REASON
    try:
        fields = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return error(HTTPStatus.BAD_REQUEST, "body is not JSON")
    if not isinstance(fields, dict) or set(fields) - {"code", "reason"}:
        return error(HTTPStatus.BAD_REQUEST, "body must be an object with code and reason")
    code = fields.get("code", DEFAULT_CODE)  # the default is ours to send, not a client's
    allowed = type(code) is int and (code == 1000 or 3000 <= code <= 4999)
    if "code" in fields and not allowed:
        return error(HTTPStatus.BAD_REQUEST, "code must be 1000 or 3000-4999")
    reason = fields.get("reason", DEFAULT_REASON)
    if not isinstance(reason, str) or len(reason.encode("utf-8")) > MAX_REASON:
        return error(HTTPStatus.BAD_REQUEST, f"reason must be text of at most {MAX_REASON} "
                                             f"bytes")
    return code, reason


def answer(view: LocalSessions, method: str, rest: str, query: str, body: bytes,
           admin: str) -> Answer:
    """The API once access is granted: ``rest`` is the path after ``--admin-path``."""
    if rest == "/sessions":
        if method not in ("GET", "HEAD"):
            return error(HTTPStatus.METHOD_NOT_ALLOWED, "use GET", ("Allow", "GET, HEAD"))
        return Answer(HTTPStatus.OK, {"sessions": view.listing()})
    one = _CLOSE_ONE.fullmatch(rest)
    if one is None and rest != "/sessions/close":
        return error(HTTPStatus.NOT_FOUND, "no such admin path")
    if method != "POST":
        return error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", ("Allow", "POST"))
    parameters = close_parameters(body)
    if isinstance(parameters, Answer):
        return parameters
    code, reason = parameters
    if one is not None:
        session_id = int(one.group(1))
        closed = view.close(session_id, code, reason, admin)
        if closed is None:
            return error(HTTPStatus.NOT_FOUND, "no such session")
        return Answer(HTTPStatus.OK, {"closed": [session_id] if closed else []})
    match = {key: values[-1] for key, values in parse_qs(query).items()
             if key in ("token", "target")}
    if not match:
        return error(HTTPStatus.BAD_REQUEST, "give token= or target=")
    return Answer(HTTPStatus.OK, {"closed": view.close_matching(
        match.get("token"), match.get("target"), code, reason, admin)})


def serve(handler: BaseHTTPRequestHandler, context: RequestContext, rest: str,
          head: bool) -> None:
    """Answer one admin request through ``handler`` (access rules first)."""
    settings, view = context.settings, context.admin_view
    if view is None:
        assert context.sessions is not None  # the server makes one with --admin-path
        view = LocalSessions(context.sessions, settings.admin_show_tokens)
    peer = handler.client_address
    admin = str(peer[0]) if isinstance(peer, tuple) and peer else settings.unix_listen or "unix"
    result = refusal(settings, peer, handler.command, handler.headers)
    body = b""
    if result is None and handler.command == "POST":
        body_or_error = _read_body(handler)
        if isinstance(body_or_error, Answer):
            result = body_or_error
        else:
            body = body_or_error
    if result is not None:
        handler.close_connection = True  # a body left unread must not be parsed as a request
        log.info("%s: admin: refused %s %s: %d %s", admin, handler.command,
                 handler.path.split("?", 1)[0], result.status, result.body["error"])
    else:
        query = handler.path.partition("?")[2]
        result = answer(view, handler.command, rest, query, body, admin)
    _send(handler, result, head)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | Answer:
    """The request body, bounded by ``MAX_BODY`` (a longer one closes the connection)."""
    length = handler.headers.get("Content-Length", "0").strip()
    if "Transfer-Encoding" in handler.headers:  # chunked: not ours to parse
        handler.close_connection = True
        return error(HTTPStatus.BAD_REQUEST, "body must have a Content-Length")
    if not length.isdigit() or int(length) > MAX_BODY:
        handler.close_connection = True
        return error(HTTPStatus.BAD_REQUEST, f"body must be at most {MAX_BODY} bytes")
    data = handler.rfile.read(int(length))
    if len(data) < int(length):
        handler.close_connection = True
        return error(HTTPStatus.BAD_REQUEST, "body ended early")
    return data


def _send(handler: BaseHTTPRequestHandler, result: Answer, head: bool) -> None:
    data = (json.dumps(result.body, separators=(",", ":")) + "\n").encode()
    handler.send_response(result.status)
    handler.send_header("Content-Type", JSON_TYPE)
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Cache-Control", "no-store")
    for name, value in result.headers:
        handler.send_header(name, value)
    if handler.close_connection:
        handler.send_header("Connection", "close")  # a body left unread: we end here
    handler.end_headers()
    if not head:
        handler.wfile.write(data)
