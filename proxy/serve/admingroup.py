"""``--admin-path`` with ``--workers N``: every worker's sessions in one answer (issue #21).

The control channel is a Unix socket per worker in a directory the parent makes before
forking (mode 0700, removed when the parent exits): ``worker-<index>.sock``. A worker
that receives an admin request answers for its own sessions and asks the others over
their sockets, one JSON request per connection (a line in, a line out, each bounded in
time and size). Why sockets per worker and not the parent relaying: the parent stays a
plain supervisor (no thread, no state), a worker restarted at the same index binds the
same path again, and one worker's trouble costs a request at most ``PEER_TIMEOUT``.

A closed session's id tells its worker: worker ``i`` of ``n`` numbers its connections
``i + 1``, ``i + 1 + n``, … (``Connections.number_from``), so a close by id goes to that
worker alone. A worker that does not answer is left out of a list (and logged).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from typing import Any

from proxy.observe.registry import SessionRegistry
from proxy.serve.adminsessions import LocalSessions
from proxy.serve.server import ProxyServer

log = logging.getLogger("proxy.admin")

#: How long a worker waits for another worker's answer.
PEER_TIMEOUT = 2.0  # seconds
#: Largest request or answer on the control channel.
MAX_MESSAGE = 64 * 1024 * 1024  # bytes
_LISTEN_BACKLOG = 16


def make_directory() -> str:
    """The parent's private directory for the workers' control sockets."""
    return tempfile.mkdtemp(prefix="websockify-admin-")


def remove_directory(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def socket_path(directory: str, index: int) -> str:
    return os.path.join(directory, f"worker-{index}.sock")


def exchange(path: str, request: dict[str, Any], timeout: float = PEER_TIMEOUT) -> Any:
    """Send one request to the control socket at ``path``; its answer.

    Raises:
        OSError: the worker is not there or did not answer in time.
        ValueError: the answer is not JSON.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        return json.loads(_read_all(sock))


def _read_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
        if len(data) > MAX_MESSAGE:
            raise ValueError("control message too large")
    return bytes(data)


class ControlServer:
    """A worker's end of the channel: answers the other workers from its registry."""

    def __init__(self, directory: str, index: int, local: LocalSessions) -> None:
        self.path = socket_path(directory, index)
        self.local = local
        try:
            os.unlink(self.path)  # left by this index's previous worker
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(_LISTEN_BACKLOG)
        self._thread = threading.Thread(target=self._serve, name="admin-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(PEER_TIMEOUT)
                try:
                    answer = self.local.handle(json.loads(_read_all(conn)))
                    conn.sendall(json.dumps(answer).encode() + b"\n")
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.warning("admin control request failed: %s", exc)

    def close(self) -> None:
        """Stop answering: shutdown() is what wakes the thread blocked in accept()."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(PEER_TIMEOUT)


class GroupSessions(LocalSessions):
    """This worker's sessions plus every other worker's, over the control sockets."""

    def __init__(self, registry: SessionRegistry, show_tokens: bool, directory: str,
                 index: int, count: int) -> None:
        super().__init__(registry, show_tokens)
        self.directory, self.index, self.count = directory, index, count

    def _others(self, request: dict[str, Any]) -> list[Any]:
        answers = []
        for other in range(self.count):
            if other == self.index:
                continue
            try:
                answers.append(exchange(socket_path(self.directory, other), request))
            except (OSError, ValueError) as exc:
                log.warning("admin: worker %d did not answer: %s", other + 1, exc)
        return answers

    def listing(self) -> list[dict[str, Any]]:
        listed = super().listing()
        for answer in self._others({"op": "list"}):
            listed.extend(answer)
        return sorted(listed, key=lambda item: int(item["id"]))

    def close(self, session_id: int, code: int, reason: str, admin: str) -> bool | None:
        owner = (session_id - 1) % self.count
        if owner == self.index:
            return super().close(session_id, code, reason, admin)
        request = {"op": "close", "id": session_id, "code": code, "reason": reason,
                   "admin": admin}
        try:
            answer = exchange(socket_path(self.directory, owner), request)
        except (OSError, ValueError) as exc:
            log.warning("admin: worker %d did not answer: %s", owner + 1, exc)
            return None
        return None if answer is None else bool(answer)

    def close_matching(self, token: str | None, target: str | None, code: int, reason: str,
                       admin: str) -> list[int]:
        closed = super().close_matching(token, target, code, reason, admin)
        request = {"op": "close_matching", "token": token, "target": target, "code": code,
                   "reason": reason, "admin": admin}
        for answer in self._others(request):
            closed.extend(int(item) for item in answer)
        return sorted(closed)


def join(server: ProxyServer, directory: str, index: int, count: int) -> ControlServer:
    """In worker ``index`` after the fork: answer the others, and ask them (the server's
    context gets the group view for its admin requests)."""
    registry = server.context.sessions
    assert registry is not None  # made by the server with --admin-path
    show = server.settings.admin_show_tokens
    control = ControlServer(directory, index, LocalSessions(registry, show))
    view = GroupSessions(registry, show, directory, index, count)
    server.context = dataclasses.replace(server.context, admin_view=view)
    return control
