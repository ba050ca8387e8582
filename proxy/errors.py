"""The exceptions this package raises on purpose (STYLE.md §8.4).

Rule: every error knows its response. A ``RequestError`` (``HandshakeError``, the request
deadline and size errors, ``TargetError``) carries the HTTP status and reason to answer
with, like h11's ``error_status_hint``, so the handler maps all of them in one place; a
``StartupError`` the exit status (usage errors are ``proxy.process.cli``'s, exit 2).
OSError stays OSError and is a normal disconnect at the
relay boundary. This module imports nothing from the rest of the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus


class ProxyError(Exception):
    """Base class for errors this package raises on purpose."""


class StartupError(ProxyError):
    """The server cannot start (listen failed, plugin missing, ...); cli exits with ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class RequestError(ProxyError):
    """An error that ends an HTTP request, with the answer to send (#17 §2).

    ``reason`` None: the status's standard phrase. ``log_line``: a line to log without the
    request prefix (websockify's token and auth lines).
    """

    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    log_line: str | None = None


class HandshakeError(RequestError):
    """Reject an HTTP request with ``status``; ``reason`` becomes the reason phrase.

    websockify puts its exception text in the status line (spec §4.2), so the reason is
    user-visible and fixed by the spec for the checks it shares with websockify.
    """

    def __init__(
        self,
        status: HTTPStatus | int,
        reason: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        log_line: str | None = None,
    ) -> None:
        self.status = HTTPStatus(status)
        self.reason = reason
        self.headers = tuple(headers)
        self.log_line = log_line
        super().__init__(f"{self.status.value} {reason or self.status.phrase}")


class RequestTimeout(RequestError):
    """The HTTP request did not arrive completely within the handshake deadline.

    Deliberately not a TimeoutError: http.server swallows those with its own log line,
    and we answer 408 instead (websockify has no deadline after the first byte, §13.8).
    """

    status = HTTPStatus.REQUEST_TIMEOUT


class RequestHeadTooLarge(RequestError):
    """The request line and headers exceed ``Settings.max_request_head``: answered 431."""

    status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


class TokenError(HandshakeError):
    """No token, or an unknown one (spec §8.1).

    websockify logs ``<client>: Token not present`` / ``Token '<t>' not found`` and
    closes without any response; we answer ``status`` unless the silent close is chosen.
    """


class AuthError(HandshakeError):
    """The auth plugin refused the request (spec §9.1): its code, message and headers.

    A class of its own so the metrics count it as ``auth`` without knowing the plugins.
    """


class TargetError(RequestError):
    """The target could not be reached: after the 101 a close 1011 (spec §5.3); before it
    (``--connect-before-upgrade``) this answer, 504 when the connect timed out, else 502.

    The message is the cause's text (websockify's "Failed to connect to ..." line);
    ``__cause__`` holds the OSError.
    """

    reason = "Failed to connect to downstream server"  # the 1011's reason (spec §5.3)

    @property
    def status(self) -> HTTPStatus:  # type: ignore[override]  # read-only here
        if isinstance(self.__cause__, TimeoutError):
            return HTTPStatus.GATEWAY_TIMEOUT
        return HTTPStatus.BAD_GATEWAY
