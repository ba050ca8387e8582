"""The embedding API as README.rst shows it: ProxyServer(settings) in another program's thread."""

from __future__ import annotations

import socket
import threading

from wsproto.events import CloseConnection

from tests.conftest import TIMEOUT
from tests.support.backends import EchoBackend
from tests.support.wsclient import WSClient


def test_the_readme_embedding_example_serves_and_shuts_down() -> None:
    with EchoBackend() as backend:
        # --- as in README.rst, "Embedding" ---
        from proxy.server import ProxyServer
        from proxy.settings import Settings

        settings = Settings(listen_host="127.0.0.1", listen_port=0,
                            target_host="127.0.0.1", target_port=backend.port)
        server = ProxyServer(settings)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        # --- end of the example's start ---
        try:
            with WSClient.connect(server.port) as client:
                client.send_binary(b"embedded")
                assert client.recv_bytes(8) == b"embedded"
                server.stop_sessions()  # example: close live sessions with 1001
                close = client.recv_close()
                assert isinstance(close, CloseConnection) and close.code == 1001
                client.reply_close(close)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(TIMEOUT)
        assert not thread.is_alive()
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT).close()
        except ConnectionRefusedError:
            pass
        else:
            raise AssertionError("the listener is still open after server_close()")
