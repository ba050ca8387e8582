"""proxy.process.runner: process-level settings applied before serving."""

from __future__ import annotations

import socket
import sys

from proxy.process import runner, switchinterval
from proxy.settings import Settings


def test_serve_lengthens_the_gil_switch_interval_before_binding() -> None:
    """Without it a burst on thousands of idle connections stalled
    (proxy.process.switchinterval)."""
    previous = sys.getswitchinterval()
    try:
        with socket.create_server(("127.0.0.1", 0)) as busy:
            port = busy.getsockname()[1]
            status = runner.serve(Settings(listen_host="127.0.0.1", listen_port=port,
                                           target_host="127.0.0.1", target_port=9))
        assert status == 1  # the port was taken: serve() returned after the process setup
        assert abs(sys.getswitchinterval() - switchinterval.FLOOR) < 1e-6
    finally:
        sys.setswitchinterval(previous)


def test_each_worker_numbers_its_own_sessions() -> None:
    """--workers: ids stay unique across workers (log lines, --record file names)."""
    from proxy.serve.server import ProxyServer

    server = ProxyServer(Settings(listen_host="127.0.0.1", listen_port=0,
                                  target_host="127.0.0.1", target_port=9, workers=3))
    try:
        server.after_fork(1, 3)
        assert [server.next_session_id() for _ in range(3)] == [2, 5, 8]
        assert not server.owns_listener
    finally:
        server.server_close()
