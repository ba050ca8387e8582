"""Run ``ProxyServer`` in a thread of the test process (the in-process tests, STYLE §8.5)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from proxy.serve.server import ProxyServer
from proxy.settings import Settings
from tests.conftest import TIMEOUT
from tests.support.waiting import wait_for as wait_for  # re-exported for the tests


@contextmanager
def running(settings: Settings | None = None, **overrides: object) -> Iterator[ProxyServer]:
    """A server on 127.0.0.1 port 0 (target 127.0.0.1:9 unless overridden), stopped after.

    Live sessions are closed (1001) and waited for, so no handler thread outlives the test.
    """
    if settings is None:
        options: dict[str, object] = {"listen_host": "127.0.0.1", "target_host": "127.0.0.1",
                                      "target_port": 9}
        settings = Settings(**{**options, **overrides})  # type: ignore[arg-type]
    server = ProxyServer(settings)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.stop_sessions()
        wait_for(lambda: server.live_connections == 0 or None, "sessions to end", default=True)
        server.server_close()
        thread.join(TIMEOUT)
