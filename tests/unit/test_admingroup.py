"""The ``--workers`` control channel of ``--admin-path`` over real Unix sockets (issue #21):
a worker's view holds every worker's sessions and sends a close to the owner."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.observe.registry import LiveSession, SessionRegistry
from proxy.observe.sessionlog import Session
from proxy.serve import admingroup
from proxy.serve.adminsessions import LocalSessions


class Counts:
    received_from_client = 0
    received_from_target = 0


def started(registry: SessionRegistry, session_id: int, token: str) -> LiveSession:
    session = Session(peer="127.0.0.1", peer_port=1000 + session_id)
    session.token, session.target = token, "h:1"
    live = registry.watch(session_id, session, None)
    registry.start(live, Counts())
    return live


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "control")
    Path(path).mkdir(mode=0o700)
    yield path


def test_the_view_of_worker_1_lists_and_closes_in_worker_2(directory: str) -> None:
    mine, theirs = SessionRegistry(), SessionRegistry()
    # Worker 1 of 2 numbers 1, 3, 5, …; worker 2 numbers 2, 4, 6, …
    own = started(mine, 1, "t1")
    other = [started(theirs, 2, "t1"), started(theirs, 4, "t2")]
    control = admingroup.ControlServer(directory, 1, LocalSessions(theirs, False))
    try:
        view = admingroup.GroupSessions(mine, False, directory, 0, 2)
        assert [item["id"] for item in view.listing()] == [1, 2, 4]
        assert view.close(4, 4000, "bye", "127.0.0.1") is True
        assert (other[1].close_request.code, other[1].close_request.reason) == (4000, "bye")
        assert view.close(4, 4000, "bye", "127.0.0.1") is False  # already closing
        assert view.close(6, 4000, "bye", "127.0.0.1") is None  # no such session there
        assert view.close_matching("t1", None, 1001, "x", "127.0.0.1") == [1, 2]
        assert own.close_request.code == other[0].close_request.code == 1001
    finally:
        control.close()
        for live in (own, *other):
            live.close_request.close()


def test_a_worker_that_does_not_answer_is_left_out(directory: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    mine = SessionRegistry()
    own = started(mine, 1, "t")
    try:
        view = admingroup.GroupSessions(mine, False, directory, 0, 2)
        with caplog.at_level(logging.WARNING, "proxy.admin"):
            assert [item["id"] for item in view.listing()] == [1]
            assert view.close(2, 1000, "", "127.0.0.1") is None
        assert "admin: worker 2 did not answer" in caplog.text
    finally:
        own.close_request.close()


def test_a_bad_control_request_gets_no_answer(directory: str) -> None:
    control = admingroup.ControlServer(directory, 0, LocalSessions(SessionRegistry(), False))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(control.path)
            sock.sendall(b'{"op": "reboot", "code": 1, "reason": "", "admin": ""}\n')
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(100) == b""
        # The server goes on answering.
        assert admingroup.exchange(control.path, {"op": "list"}) == []
        assert json.loads(json.dumps(admingroup.exchange(control.path, {"op": "list"}))) == []
    finally:
        control.close()
