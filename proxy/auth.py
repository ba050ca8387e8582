"""Auth plugins with websockify's interface (spec §9); built-ins land with the TLS/auth issue.

A plugin is built once with ``--auth-source`` and shared by all connection threads
(websockify built one per forked child), so ``authenticate`` must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import Message
from typing import Any


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
                         log_msg=f"Invalid Origin Header: Expected one of {expected}, got '{actual}'")


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
