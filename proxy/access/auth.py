"""Auth plugins with websockify's interface (spec §9) and the built-in ones.

A plugin is built once with ``--auth-source`` and shared by all connection threads
(websockify built one per forked child), so ``authenticate`` must be thread-safe. The
built-ins are: they keep only what ``__init__`` parsed and never change it afterwards.
Pure: no sockets; the handler strips spoofed ``SSL_*`` headers before any plugin runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from email.message import Message
from typing import Any, NoReturn


class AuthenticationError(Exception):
    """Reject a request: websockify's signature and attributes (``code``, ``headers``, ``msg``).

    ``str(exc)`` is ``"<code> <log_msg>"``, which the handler logs as
    ``handler exception: 401 None`` the way websockify does (spec §9.1).
    """

    def __init__(self, log_msg: str | None = None, response_code: int = 403,
                 response_headers: Mapping[str, str] | None = None,
                 response_msg: str | None = None) -> None:
        self.code = response_code
        self.headers = dict(response_headers or {})
        self.msg = response_msg
        if log_msg is None:
            log_msg = response_msg
        super().__init__(f"{self.code} {log_msg}")


class InvalidOriginError(AuthenticationError):
    """websockify's Origin rejection: 403 "Invalid Origin" (spec §9.2)."""

    def __init__(self, expected: Any, actual: Any) -> None:
        self.expected_origin = expected
        self.actual_origin = actual
        super().__init__(response_msg="Invalid Origin",
                         log_msg=f"Invalid Origin Header: Expected one of {expected}, "
                                 f"got '{actual}'")


def is_authentication_error(exc: BaseException) -> bool:
    """True for ours and for websockify's own class (a user plugin may import the real one)."""
    return isinstance(exc, AuthenticationError) or (
        all(hasattr(exc, name) for name in ("code", "headers", "msg"))
        and isinstance(getattr(exc, "code"), int))


class BasePlugin:
    """Accepts everything (websockify's ``auth_plugins.BasePlugin``)."""

    def __init__(self, src: str | None = None) -> None:
        self.source = src

    def authenticate(self, headers: Message, target_host: str | None,
                     target_port: int | str | None) -> None:
        """Raise ``AuthenticationError`` to reject the request."""


class BasicHTTPAuth:
    """HTTP Basic authentication against ``--auth-source user:password`` (spec §9.2).

    No or wrong credentials: 401 with ``WWW-Authenticate: Basic realm="Websockify"``;
    a scheme other than ``Basic `` or a value without ``:``: 403. websockify drops the
    connection without an answer on undecodable base64; we answer 403. The comparison is
    constant-time (websockify compares strings, spec §13.15).
    """

    REALM_HEADER = {"WWW-Authenticate": 'Basic realm="Websockify"'}

    def __init__(self, src: str | None = None) -> None:
        self.src = src
        # Only the built-in comparison reads src as user:password; a subclass that
        # overrides validate_creds (a users file, say) may use it as it likes (#18).
        uses_source = type(self).validate_creds is BasicHTTPAuth.validate_creds
        if uses_source and (not src or ":" not in src):
            raise ValueError("BasicHTTPAuth needs --auth-source user:password")

    def authenticate(self, headers: Message, target_host: str | None,
                     target_port: int | str | None) -> None:
        value = headers.get("Authorization")
        if not value:
            self.demand_auth()
        if not value.startswith("Basic "):  # case-sensitive, as websockify
            self.auth_error()
        try:
            # Credentials are ISO-8859-1, as websockify decodes them (RFC 7617 §2.1 leaves
            # the charset open); every byte string decodes.
            text = base64.b64decode(value[6:]).decode("ISO-8859-1")
        except (binascii.Error, ValueError):
            self.auth_error()
        user, sep, password = text.partition(":")
        if not sep:
            self.auth_error()
        if not self.validate_creds(user, password):
            self.demand_auth()

    def validate_creds(self, username: str, password: str) -> bool:
        """Compare ``username:password`` with the source in constant time.

        Both sides are hashed first, so not even the length leaks through timing.
        """
        given = hashlib.sha256(f"{username}:{password}".encode("utf-8")).digest()
        expected = hashlib.sha256((self.src or "").encode("utf-8")).digest()
        return hmac.compare_digest(given, expected)

    def auth_error(self) -> NoReturn:
        raise AuthenticationError(response_code=403)

    def demand_auth(self) -> NoReturn:
        raise AuthenticationError(response_code=401, response_headers=self.REALM_HEADER)


#: ``--auth-source`` keyword of ExpectOrigin: accept an Origin naming the request's Host.
SAME_ORIGIN = "same-origin"
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _wildcard(pattern: str) -> re.Pattern[str]:
    """``*`` matches one or more host-name characters (letters, digits, ``-`` and ``.``)."""
    parts = (re.escape(part) for part in pattern.split("*"))
    return re.compile("[A-Za-z0-9.-]+".join(parts), re.IGNORECASE)


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names the request's ``Host``.

    The scheme is not compared (a TLS-terminating proxy may sit in front); a default
    port may be written on either side.
    """
    scheme, sep, netloc = origin.partition("://")
    if not sep or not host or not netloc or "/" in netloc:
        return False
    netloc, host = netloc.lower(), host.strip().lower()
    if netloc == host:
        return True
    port = _DEFAULT_PORTS.get(scheme.lower())
    return port is not None and (f"{netloc}:{port}" == host or netloc == f"{host}:{port}")


class ExpectOrigin:
    """Accept only an ``Origin`` in the whitespace-separated ``--auth-source`` (spec §9.2).

    Beyond websockify: ``*`` wildcards in host names (``https://*.example.com``) and the
    keyword ``same-origin``, which accepts an Origin matching the request's ``Host``
    (the cross-site WebSocket hijacking defence). Otherwise 403 "Invalid Origin".
    """

    def __init__(self, src: str | None = None) -> None:
        #: The listed origins, as websockify keeps them (its log line shows this list).
        self.source = src.split() if src else []
        self._exact = frozenset(o for o in self.source if "*" not in o and o != SAME_ORIGIN)
        self._patterns = tuple(_wildcard(o) for o in self.source if "*" in o)
        self._same_origin = SAME_ORIGIN in self.source

    def authenticate(self, headers: Message, target_host: str | None,
                     target_port: int | str | None) -> None:
        origin = headers.get("Origin")
        if origin is None or not self._allowed(origin, headers.get("Host")):
            raise InvalidOriginError(expected=self.source, actual=origin)

    def _allowed(self, origin: str, host: str | None) -> bool:
        if origin in self._exact:
            return True
        if any(pattern.fullmatch(origin) for pattern in self._patterns):
            return True
        return self._same_origin and same_origin(origin, host)


class ClientCertCNAuth:
    """Accept only a verified client certificate whose CN is in ``--auth-source`` (§9.2).

    Reads ``SSL_CLIENT_S_DN_CN``, which the handler sets from the TLS peer certificate
    after deleting every client-sent ``SSL_*`` header in any letter case (websockify's
    bypass, spec §13.15). Meant for ``--ssl-only --verify-client``.
    """

    def __init__(self, src: str | None = None) -> None:
        self.source = src.split() if src else []

    def authenticate(self, headers: Message, target_host: str | None,
                     target_port: int | str | None) -> None:
        if headers.get("SSL_CLIENT_S_DN_CN") not in self.source:
            raise AuthenticationError(response_code=403)
