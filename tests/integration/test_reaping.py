"""Issue #15 §1 against the real command: sessions whose peers leave while stalled end.

The reproduction from the issue at CI size: a target that accepts and never reads, clients
that push 64 KiB frames until the proxy stops reading them and then leave (Close + FIN, or
a reset). Each session must end within the close timeout (5 s) plus 1 s, and release its
thread, its fds and its ``--max-connections`` slot. Then the other direction, and
``--stall-timeout``. The fd and thread counts come from /proc.
"""

from __future__ import annotations

import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from wsproto.events import BytesMessage, CloseConnection

from tests.conftest import TIMEOUT, scaled
from tests.integration.conftest import StartProxy
from tests.support.backends import ConnRecord, NeverReadBackend, TCPBackend
from tests.support.bounds import push_until_stalled
from tests.support.hostile import ProcessProbe
from tests.support.process import ProxyProcess
from tests.support.wsclient import HandshakeRejected, WSClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLOSE_TIMEOUT = 5.0  # proxy.settings.CLOSE_TIMEOUT
LEFT = "Ended: client left while the target was not reading"


def push_frames_until_stalled(client: WSClient) -> None:
    push_until_stalled(client.sock, client.ws.send(BytesMessage(data=b"x" * 65536)))


def leave(client: WSClient, how: str) -> None:
    if how == "reset":
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        client.close()  # a browser tab closed: a Close frame, then FIN
        client.sock.shutdown(socket.SHUT_WR)
    client.close_socket()


def probe_of(proxy: ProxyProcess) -> tuple[ProcessProbe, tuple[int, int]]:
    assert proxy.proc is not None
    probe = ProcessProbe(proxy.proc.pid)
    return probe, probe.idle(proxy.port, TIMEOUT)  # wait_port's probe connection is gone


def test_clients_leaving_stalled_sessions_are_reaped_and_free_their_slots(
        start_proxy: StartProxy) -> None:
    with NeverReadBackend() as target:
        proxy = start_proxy(target.port, "--max-connections", "4")
        probe, baseline = probe_of(proxy)
        clients = [WSClient.connect(proxy.port) for _ in range(4)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(push_frames_until_stalled, clients))
        with pytest.raises(HandshakeRejected) as full:
            WSClient.connect(proxy.port).close_socket()
        assert full.value.status == 503
        for client, how in zip(clients, ("close", "reset", "close", "reset")):
            leave(client, how)
        left = time.monotonic()
        after = probe.wait_for(baseline, CLOSE_TIMEOUT + 1 + 1)
        took = time.monotonic() - left
        assert after[0] <= baseline[0] and after[1] <= baseline[1], (baseline, after, took)
        assert took <= CLOSE_TIMEOUT + scaled(1 + 0.5), took
        with WSClient.connect(proxy.port):  # the slots are free again
            pass
        # One line each: reaped while stalled, or (when the kernel took enough to let the
        # proxy read the Close) ended at the close timeout with bytes the target never took.
        err = proxy.stderr()
        assert err.count(": Ended: ") == 4 and LEFT in err, err[-3000:]


class FloodThenLeave(TCPBackend):
    """Sends until the proxy stops reading it (its client does not read), then leaves."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def handle(self, rec: ConnRecord) -> None:
        push_until_stalled(rec.sock, b"t" * 65536)
        if self.how == "reset":
            rec.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            rec.sock.close()
        else:
            rec.sock.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize("how", ["fin", "reset"])
def test_a_target_leaving_while_its_client_does_not_read_is_reaped(
        start_proxy: StartProxy, how: str) -> None:
    with FloodThenLeave(how) as target:
        proxy = start_proxy(target.port)
        probe, baseline = probe_of(proxy)
        client = WSClient.connect(proxy.port)  # and never reads
        try:
            target.wait_connections(1)
            proxy.wait_for_log(": Ended: ", 4 * TIMEOUT + CLOSE_TIMEOUT + 2)
            err = proxy.stderr()
            assert ("Ended: target left while the client was not reading" in err
                    or "bytes not taken by the client" in err), err[-2000:]
            after = probe.wait_for(baseline, 2.0)
            assert after[0] <= baseline[0] and after[1] <= baseline[1], (baseline, after)
        finally:
            client.close_socket()


def test_a_target_that_stops_reading_is_closed_1011_after_the_stall_timeout(
        start_proxy: StartProxy) -> None:
    with NeverReadBackend() as target:
        proxy = start_proxy(target.port, "--stall-timeout", "1", "--metrics-path", "/metrics")
        client = WSClient.connect(proxy.port)
        try:
            push_frames_until_stalled(client)
            started = time.monotonic()
            close = client.recv_close(timeout=1 + 2)
            assert (close.code, close.reason) == (1011, "Target stopped reading")
            assert time.monotonic() - started <= 1 + scaled(1)
            client.reply_close(close)
        finally:
            client.close_socket()
        proxy.wait_for_log("Closing: 1011 Target stopped reading")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            body = b""
            while chunk := sock.recv(65536):
                body += chunk
        assert b'websockify_connections_failed_total{reason="target_stalled"} 1' in body
        assert isinstance(close, CloseConnection)
