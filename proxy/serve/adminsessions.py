"""What the admin API does to sessions, for one process (``LocalSessions``) or, through
``proxy.serve.admingroup``, for every ``--workers`` worker (issue #21).

``handle`` is the same operations as a control-channel request from another worker.
"""

from __future__ import annotations

import logging
from typing import Any

from proxy.observe.registry import LiveSession, SessionRegistry

log = logging.getLogger("proxy.admin")


def close_live(live: LiveSession, code: int, reason: str, admin: str) -> bool:
    """Ask ``live``'s relay to close; one log line naming the admin client (issue #21)."""
    if not live.close_request.request(code, reason):
        return False  # already closing on an earlier request
    log.info("%s: admin: closing session %d (client %s, target %s): %d %s", admin, live.id,
             live.session.client or live.session.peer, live.session.target, code, reason)
    return True


class LocalSessions:
    """The sessions of this process's registry."""

    def __init__(self, registry: SessionRegistry, show_tokens: bool) -> None:
        self.registry = registry
        self.show_tokens = show_tokens

    def listing(self) -> list[dict[str, Any]]:
        return [live.describe(self.show_tokens) for live in self.registry.snapshot()]

    def close(self, session_id: int, code: int, reason: str, admin: str) -> bool | None:
        """True: closing now; False: was closing already; None: no such session."""
        live = self.registry.get(session_id)
        if live is None:
            return None
        return close_live(live, code, reason, admin)

    def close_matching(self, token: str | None, target: str | None, code: int, reason: str,
                       admin: str) -> list[int]:
        """Close every session with this token and/or target; the ids closed now."""
        return [live.id for live in self.registry.matching(token, target)
                if close_live(live, code, reason, admin)]

    def handle(self, request: dict[str, Any]) -> Any:
        """A control-channel request (``proxy.serve.admingroup``), on this process only."""
        op = request["op"]
        if op == "list":
            return LocalSessions.listing(self)
        code, reason, admin = int(request["code"]), str(request["reason"]), str(request["admin"])
        if op == "close":
            return LocalSessions.close(self, int(request["id"]), code, reason, admin)
        if op == "close_matching":
            return LocalSessions.close_matching(self, _text(request["token"]),
                                                _text(request["target"]), code, reason, admin)
        raise ValueError(f"unknown control request {op!r}")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
