"""Scale-out (docs/scaling.rst): HAProxy in front of two proxy instances sharing TokenRedis.

Real redis-server and HAProxy on free loopback ports (skipped with a reason when the
Debian packages are missing). Clients connect from 127.0.0.2 so the real client address
differs from the balancer's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import StartProxy
from tests.integration.test_tokens import connect_from
from tests.support.backends import EchoBackend
from tests.support.services import HAProxy, RedisServer

pytestmark = pytest.mark.integration

#: The configuration documented in docs/scaling.rst, with loopback ports.
HAPROXY_CONFIG = """\
global
    maxconn 256

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    # An upgraded WebSocket connection may stay idle much longer than an HTTP request.
    timeout tunnel 1h

frontend websockify
    bind 127.0.0.1:{port}
    # The proxies trust this address (--trusted-proxy) and log the client it names.
    option forwardfor
    http-request del-header Forwarded
    default_backend websockify

backend websockify
    balance roundrobin
{servers}
"""


def test_two_instances_behind_haproxy_share_tokens_in_redis(
        start_proxy: StartProxy, tmp_path: Path) -> None:
    pytest.importorskip("redis")
    with RedisServer(tmp_path / "redis") as redis, EchoBackend() as first, \
            EchoBackend() as second:
        client: Any = redis.client()
        try:
            client.set("desk:one", f'{{"host": "127.0.0.1:{first.port}"}}')
            client.set("desk:two", f"127.0.0.1:{second.port}")
            proxies = [start_proxy(0, "--token-plugin", "TokenRedis", "--token-source",
                                   f"127.0.0.1:{redis.port}:::desk", "--trusted-proxy",
                                   "127.0.0.1", positionals=["127.0.0.1:{port}"])
                       for _ in range(2)]
            servers = "".join(f"    server ws{i} 127.0.0.1:{p.port}\n"
                              for i, p in enumerate(proxies))
            config = HAPROXY_CONFIG.replace("{servers}", servers)
            with HAProxy(tmp_path / "haproxy", config) as balancer:
                for token in ["one", "two", "one", "two"]:
                    with connect_from("127.0.0.2", balancer.port, f"/?token={token}") as ws:
                        ws.echo(token.encode())
                assert [first.connections[i].data for i in range(len(first.connections))] \
                    == [b"one", b"one"]
                assert [c.data for c in second.connections] == [b"two", b"two"]
                client.set("desk:three", f"127.0.0.1:{second.port}")  # added while running
                for _ in range(2):
                    with connect_from("127.0.0.2", balancer.port, "/?token=three") as ws:
                        ws.echo(b"three")
        finally:
            client.close()
    assert len(second.connections) == 4
    for proxy in proxies:
        lines = proxy.stderr_lines()
        assert "TokenRedis backend initialized (127.0.0.1:%d)" % redis.port in lines
        assert "resolving token 'three'" in lines
        upgraded = [line for line in lines if line.endswith("WebSocket connection")]
        assert len(upgraded) == 3, lines
        assert all(" - - [" in line and line.startswith("127.0.0.2 - - [")
                   and "127.0.0.2: Plain non-SSL (ws://) WebSocket connection" in line
                   for line in upgraded), upgraded
