"""proxy.observe.sessionlog: the one record per connection and its failure reason (issue 10)."""

from __future__ import annotations

from http import HTTPStatus

from proxy.errors import AuthError, HandshakeError, TokenError
from proxy.observe import sessionlog


class Counts:
    """The two byte counters a relay shows to metrics and session records."""

    def __init__(self, client: int = 0, target: int = 0) -> None:
        self.received_from_client = client
        self.received_from_target = target


def test_record_of_a_session() -> None:
    session = sessionlog.Session(peer="10.0.0.1", peer_port=5555, started=0.0,
                                 started_monotonic=100.0)
    session.status, session.target, session.relay = 101, "h:1", Counts(30, 40)
    session.close_code, session.close_reason, session.closed_by_client = 1000, "", True
    rec = sessionlog.record(session, now=101.25)
    assert rec["time"] == "1970-01-01T00:00:00.000Z"
    assert (rec["client"], rec["peer_port"], rec["duration"]) == ("10.0.0.1", 5555, 1.25)
    assert (rec["bytes_from_client"], rec["bytes_from_target"]) == (30, 40)
    assert (rec["closed_by"], rec["failure"]) == ("client", None)


def test_failure_reasons() -> None:
    assert sessionlog.failure_reason(TokenError(HTTPStatus.NOT_FOUND)) == "token"
    assert sessionlog.failure_reason(HandshakeError(HTTPStatus.SERVICE_UNAVAILABLE)) == "limit"
    assert sessionlog.failure_reason(HandshakeError(HTTPStatus.BAD_GATEWAY)) == "target"
    assert sessionlog.failure_reason(HandshakeError(HTTPStatus.BAD_REQUEST)) == "handshake"
    assert sessionlog.failure_reason(AuthError(HTTPStatus.FORBIDDEN)) == "auth"


def test_the_session_log_imports_nothing_of_the_stages_it_observes() -> None:
    """sessionlog gets plain facts from the handler: no protocol, no access."""
    from tests.unit.test_layers import imported_modules, modules
    known = modules()
    imported = imported_modules(known["proxy.observe.sessionlog"], known)
    assert sorted(m for m in imported if m.startswith(("proxy.protocol", "proxy.access"))) == []
