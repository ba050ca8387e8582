"""Who may connect, and where to: the token lookup and the auth check of an upgrade.

Pure with respect to our sockets: works on the request's path and headers and on the
plugins built at startup (which may do their own I/O, e.g. an HTTP token API). Runs in
websockify's order: token, then auth, then the handshake checks (spec §4.3).
"""

from __future__ import annotations

from email.message import Message
from http import HTTPStatus
from typing import Any

from proxy.access.auth import is_authentication_error
from proxy.errors import AuthError, HandshakeError, TokenError
from proxy.settings import Settings, Target
from proxy.access.tokens import extract_token, target_from_lookup
from proxy.access.tokens.base import UnusablePort

TOKEN_MISSING = "Token not present"  # websockify's log text (spec §8.1)
TOKEN_UNKNOWN = "Token '%s' not found"
#: Header set from the verified client certificate; never taken from the client (§9.1).
CLIENT_CN_HEADER = "SSL_CLIENT_S_DN_CN"


def request_token(settings: Settings, path: str, headers: Message) -> str | None:
    """The token this request carries (``--token-from``, ``--host-token``), if any."""
    return extract_token(settings.token_from, settings.host_token, path, headers)


def target_for_token(settings: Settings, plugin: Any, token: str | None) -> Target:
    """The token plugin's target for ``token``; the configured one without a plugin.

    The handler extracts the token once (``request_token``), records it for the session
    log and passes it here (#17 §2).

    Raises:
        TokenError: no token, or the plugin does not know it (or answered nonsense).
    """
    if plugin is None:
        return settings.target
    if token is None:
        raise TokenError(HTTPStatus.BAD_REQUEST, "Token not present", log_line=TOKEN_MISSING)
    try:
        target = target_from_lookup(plugin.lookup(token))
    except UnusablePort as exc:
        # e.g. "remote_port", 0 or 70000: nothing to connect to, so a 502 before the 101
        # rather than "500 Token plugin failed" (#18).
        raise HandshakeError(HTTPStatus.BAD_GATEWAY,
                             log_line=f"Token '{token}': {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise TokenError(HTTPStatus.INTERNAL_SERVER_ERROR, "Token plugin failed",
                         log_line=f"token plugin answered {exc}") from exc
    except OSError as exc:
        # The plugin's backend (token API, Redis) is down or slow. websockify logs
        # "handler exception: <exc>" and closes silently (spec §8.1); we answer 502/504.
        status = (HTTPStatus.GATEWAY_TIMEOUT if isinstance(exc, TimeoutError)
                  else HTTPStatus.BAD_GATEWAY)
        raise HandshakeError(status, "Token lookup failed",
                             log_line=f"handler exception: {exc}") from exc
    if target is None:
        raise TokenError(HTTPStatus.NOT_FOUND, "Token not found", log_line=TOKEN_UNKNOWN % token)
    return target


def strip_client_cert_headers(headers: Message, common_name: str | None) -> None:
    """Delete every ``SSL_*`` header in any letter case, then set the verified CN.

    websockify deletes only the upper-case spelling, so ``ssl_client_s_dn_cn: alice``
    passes its ClientCertCNAuth (spec §9.2, §13.15); ``Message`` lookups ignore case.
    """
    for name in {name for name in headers.keys() if name.upper().startswith("SSL_")}:
        del headers[name]
    if common_name is not None:
        headers[CLIENT_CN_HEADER] = common_name


def authenticate(plugin: Any, headers: Message, target: Target) -> None:
    """Run the auth plugin (spec §9.1).

    Raises:
        AuthError: the plugin's ``AuthenticationError`` as an HTTP answer (its code,
            message and headers); the error's text is websockify's ``<code> <log_msg>``.
    """
    if plugin is None:
        return
    # As websockify passes them (#18): the port as the token plugin returned it (a str
    # stays a str), None/None for a Unix socket or when there is no TCP target.
    host: str | None = target.host
    port: int | str | bytes | None = target.port if target.given_port is None \
        else target.given_port
    if target.unix_socket or not target.host:
        host = port = None
    if target.repeater_id:
        # A parked server: the ID as the port, when known before the 101 (issue #20 §1).
        port = target.repeater_id
    try:
        plugin.authenticate(headers, host, port)
    except Exception as exc:  # a plugin's own exception class; recognised by attributes
        if not is_authentication_error(exc):
            raise
        code, msg, extra = exc.code, exc.msg, exc.headers  # type: ignore[attr-defined]
        # websockify logs these as "handler exception: 401 None" (spec §9.1).
        raise AuthError(code, msg, tuple(dict(extra or {}).items()),
                        log_line=f"handler exception: {exc}") from exc
