"""The live-session registry behind ``--admin-path`` (issue #21)."""

from __future__ import annotations

import os

from proxy.observe.registry import LiveTap, SessionRegistry
from proxy.observe.sessionlog import Session


class Counts:
    def __init__(self, client: int, target: int) -> None:
        self.received_from_client = client
        self.received_from_target = target


class Recording:
    """An inner tap (as --traffic/--record): every call must reach it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def from_client(self, data: bytes, messages: int) -> None:
        self.calls.append(("from_client", (data, messages)))

    def from_target(self, data: bytes) -> None:
        self.calls.append(("from_target", data))

    def sent_to_target(self, complete: bool) -> None:
        self.calls.append(("sent_to_target", complete))

    def sent_to_client(self, complete: bool) -> None:
        self.calls.append(("sent_to_client", complete))


def test_live_tap_counts_and_passes_on() -> None:
    inner = Recording()
    tap = LiveTap(inner)
    tap.from_client(b"ab", 2)
    tap.from_client(b"", 0)  # a read that completed no message
    tap.from_target(b"xyz")
    tap.sent_to_target(True)
    tap.sent_to_client(False)
    assert (tap.messages_from_client, tap.messages_from_target) == (2, 1)
    assert inner.calls == [("from_client", (b"ab", 2)), ("from_client", (b"", 0)),
                           ("from_target", b"xyz"), ("sent_to_target", True),
                           ("sent_to_client", False)]


def session(token: str | None, target: str) -> Session:
    s = Session(peer="10.0.0.1", peer_port=5555, started=0.0, started_monotonic=100.0)
    s.client, s.token, s.target, s.subprotocol = "192.0.2.7", token, target, "binary"
    return s


def test_describe_uses_the_session_record_names() -> None:
    registry = SessionRegistry()
    live = registry.watch(7, session("abcdefgh", "h:1"), None)
    live.tap.last_data = 100.5
    registry.start(live, Counts(30, 40))
    described = live.describe(show_tokens=False, now=102.0)
    assert described == {
        "id": 7, "time": "1970-01-01T00:00:00.000Z", "client": "192.0.2.7", "peer": "10.0.0.1",
        "peer_port": 5555, "target": "h:1", "token": "abcd", "subprotocol": "binary", "tls": False,
        "bytes_from_client": 30, "bytes_from_target": 40, "messages_from_client": 0,
        "messages_from_target": 0, "duration": 2.0, "idle": 1.5, "pid": os.getpid()}
    assert live.describe(show_tokens=True)["token"] == "abcdefgh"


def test_sessions_are_listed_from_start_to_end_and_matched() -> None:
    registry = SessionRegistry()
    a = registry.watch(3, session("t1", "h:1"), None)
    b = registry.watch(1, session("t2", "h:1"), None)
    c = registry.watch(2, session("t1", "h:2"), None)
    assert registry.snapshot() == []  # not before the relay runs
    for live in (a, b, c):
        registry.start(live, Counts(0, 0))
    assert [live.id for live in registry.snapshot()] == [1, 2, 3]
    assert [live.id for live in registry.matching(token="t1")] == [2, 3]
    assert [live.id for live in registry.matching(target="h:1")] == [1, 3]
    assert [live.id for live in registry.matching(token="t1", target="h:1")] == [3]
    assert registry.matching(token="t") == []  # whole tokens only
    registry.end(a)
    assert registry.get(3) is None and registry.get(1) is b
    assert not a.close_request.request(1000, "")  # freed with the session
    for live in (b, c):
        registry.end(live)


def test_the_api_and_the_json_record_share_their_names() -> None:
    """Issue #21: a figure both have goes by one name; only live figures are the API's own."""
    from proxy.observe import sessionlog
    live = SessionRegistry.watch(1, session("t", "h:1"), None)
    api = set(live.describe(show_tokens=True))
    record = set(sessionlog.record(live.session))
    live_only = {"id", "messages_from_client", "messages_from_target", "idle", "pid"}
    assert api - record == live_only
    live.close_request.close()
