"""The request path's decision without sockets (#17 §2): ``proxy.serve.decision``, the
status each error carries, and the admission ticket."""

from __future__ import annotations

import errno
from http import HTTPStatus

import pytest

from proxy.access.admission import Admission, Ticket
from proxy.errors import (HandshakeError, RequestError, RequestHeadTooLarge, RequestTimeout,
                          TargetError, TokenError)
from proxy.observe import sessionlog
from proxy.serve import decision
from proxy.settings import Settings, Target
from tests.unit.test_handshake import RFC_ACCEPT, upgrade_headers


class Table:
    """A token plugin answering from a dict."""

    def __init__(self, table: dict[str, tuple[str, int]]) -> None:
        self.table = table

    def lookup(self, token: str) -> tuple[str, int] | None:
        return self.table.get(token)


class Deny:
    """An auth plugin that refuses everyone, websockify style."""

    def authenticate(self, headers: object, host: object, port: object) -> None:
        from proxy.access.auth import AuthenticationError
        raise AuthenticationError(response_code=401, response_msg="nope")


def request(token: str | None = None, refusal: HandshakeError | None = None,
            draining: bool = False, version: str = "13") -> decision.Request:
    return decision.Request("/", upgrade_headers(version=version), token, None, refusal,
                            draining, [("Server", "WebSockify")])


def test_an_accepted_request_gets_the_target_and_the_101() -> None:
    settings = Settings(token_plugin="x")
    accepted = decision.decide(settings, Table({"t": ("h", 7)}), None, request("t"))
    assert isinstance(accepted, decision.Accept)
    assert accepted.target == Target("h", 7)
    assert accepted.response.startswith(b"HTTP/1.1 101 ")
    assert RFC_ACCEPT.encode() in accepted.response and b"Server: WebSockify" in accepted.response
    assert accepted.deflate is None


def test_a_connection_limit_refusal_comes_before_the_token() -> None:
    refusal = HandshakeError(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections")
    assert decision.decide(Settings(token_plugin="x"), Table({}), None,
                           request(None, refusal)) is refusal


def test_a_draining_server_answers_503_shutting_down() -> None:
    answer = decision.decide(Settings(), None, None, request(draining=True))
    assert isinstance(answer, HandshakeError)
    assert (answer.status, answer.reason) == (503, "Server is shutting down")


def test_token_auth_and_handshake_errors_are_returned_in_websockifys_order() -> None:
    unknown = decision.decide(Settings(token_plugin="x"), Table({}), Deny(), request("t"))
    assert isinstance(unknown, TokenError) and unknown.status == 404
    denied = decision.decide(Settings(token_plugin="x"), Table({"t": ("h", 7)}), Deny(),
                             request("t", version="99"))
    assert isinstance(denied, HandshakeError) and (denied.status, denied.reason) == (401, "nope")
    bad = decision.decide(Settings(), None, None, request(version="99"))
    assert isinstance(bad, HandshakeError)
    assert (bad.status, bad.reason) == (400, "Unsupported protocol version 99")


def target_error(cause: OSError) -> TargetError:
    try:
        raise TargetError(str(cause)) from cause
    except TargetError as exc:
        return exc


@pytest.mark.parametrize(("error", "status", "failure"), [
    (RequestTimeout("late"), 408, None),
    (RequestHeadTooLarge("big"), 431, None),
    (target_error(TimeoutError("timed out")), 504, "target"),
    (target_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused")), 502, "target"),
])
def test_every_request_error_carries_its_status(error: RequestError, status: int,
                                                failure: str | None) -> None:
    assert error.status == status
    assert sessionlog.failure_reason(error) == failure


def test_a_target_error_keeps_the_cause_text_and_answers_websockifys_close_reason() -> None:
    error = target_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert str(error) == "[Errno 111] Connection refused"
    assert error.reason == "Failed to connect to downstream server"


def test_a_ticket_is_released_once() -> None:
    admission = Admission(Settings(max_connections=1))
    ticket = admission.admit("a")
    assert ticket.refusal is None and admission.live == 1
    assert admission.admit("b").refusal is not None  # full; that one counted nothing
    ticket.release()
    ticket.release()
    assert admission.live == 0


def test_a_trusted_proxys_ticket_is_named_after_its_client() -> None:
    admission = Admission(Settings(max_connections=10, max_connections_per_ip=1))
    first, second = admission.admit(None), admission.admit(None)  # the balancer's
    first.name("203.0.113.5")
    second.name("203.0.113.5")
    assert first.refusal is None and first.address == "203.0.113.5"
    assert second.refusal is not None and second.refusal.reason == \
        "Too many connections from this address"
    first.release()
    second.release()
    assert admission.live == 0
    assert admission.admit("203.0.113.5").refusal is None  # nothing left under it


def test_a_connection_never_admitted_has_nothing_to_release() -> None:
    ticket = Ticket()
    ticket.name("a")
    ticket.release()
    assert (ticket.refusal, ticket.address) == (None, None)


# -- the request context ---------------------------------------------------------------------


def test_the_handler_gets_a_context_and_never_imports_or_reads_its_server() -> None:
    """One frozen RequestContext instead of names read off self.server (#17 §2)."""
    from pathlib import Path

    from tests.unit.test_layers import imported_modules, modules
    known = modules()
    path = known["proxy.serve.handler"]
    assert "proxy.serve.server" not in imported_modules(path, known)
    assert "self.server" not in Path(path).read_text()


def test_a_worker_gets_a_context_with_its_own_stop_signal() -> None:
    import dataclasses

    from proxy.serve.server import ProxyServer

    server = ProxyServer(Settings(listen_host="127.0.0.1", listen_port=0,
                                  target_host="127.0.0.1", target_port=9, workers=2))
    try:
        inherited = server.context.stop_signal
        assert server.context.worker_index is None
        server.after_fork(1, 2)
        assert server.context.worker_index == 1
        assert server.context.stop_signal is server.stop_signal is not inherited
        assert server.context.admission is server.admission  # the rest is shared
        with pytest.raises(dataclasses.FrozenInstanceError):
            server.context.worker_index = 0  # type: ignore[misc]
    finally:
        server.server_close()


def test_the_drain_flag_is_seen_through_the_context() -> None:
    from proxy.serve.server import ProxyServer

    server = ProxyServer(Settings(listen_host="127.0.0.1", listen_port=0,
                                  target_host="127.0.0.1", target_port=9))
    try:
        server.draining = True  # as the runner sets it on SIGTERM with --drain-timeout
        assert server.context.connections.draining
    finally:
        server.server_close()


def test_a_later_408_does_not_erase_an_earlier_refusal_on_a_keep_alive_connection() -> None:
    session = sessionlog.Session(peer="p")
    session.reject(HandshakeError(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections"))
    session.reject(RequestTimeout("late"))  # the next request on the connection never came
    assert session.failure == "limit"
