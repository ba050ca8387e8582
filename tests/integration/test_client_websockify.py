"""``websockify-client`` against the real websockify 0.13.0 (issue #20 §2), installed in
a virtualenv of its own (``.venv-websockify``, made by scripts/test from the hash-checked
sdist of scripts/websockify-tests.d/requirements.txt): 64 MiB each way byte-exact, and an
RFB banner reaching a raw TCP client."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.integration.test_client import (SIZE, DuplexBackend, assert_target_read_payload,
                                           payload, push_and_read, recv_exactly,
                                           start_client)
from tests.support.backends import ScriptedBackend

pytestmark = pytest.mark.integration

WEBSOCKIFY = Path(__file__).resolve().parents[2] / ".venv-websockify" / "bin" / "websockify"
needs_websockify = pytest.mark.skipif(
    not WEBSOCKIFY.exists(), reason=f"websockify 0.13.0 not installed in {WEBSOCKIFY.parent.parent}"
                                    " (scripts/test makes it)")


@pytest.mark.slow  # about 15 s: websockify 0.13.0 unmasks in pure Python without numpy
@needs_websockify
def test_64_mib_each_way_through_websockify_0_13_arrive_byte_exact(
        start_proxy: StartProxy, tmp_path: Path) -> None:
    with DuplexBackend() as backend:
        proxy = start_proxy(backend.port, command=[str(WEBSOCKIFY)])
        with start_client(tmp_path, f"ws://127.0.0.1:{proxy.port}/") as client:
            with socket.create_connection(("127.0.0.1", client.port), timeout=4 * TIMEOUT) as tcp:
                got = push_and_read(tcp)
            assert_target_read_payload(backend, 4 * TIMEOUT)
            assert got == (SIZE, hashlib.sha256(payload(2)).hexdigest())
        assert "Traceback" not in client.stderr(), client.stderr()


@needs_websockify
def test_an_rfb_banner_through_websockify_0_13_reaches_a_raw_tcp_client(
        start_proxy: StartProxy, tmp_path: Path) -> None:
    with ScriptedBackend(b"RFB 003.008\n") as backend:
        proxy = start_proxy(backend.port, command=[str(WEBSOCKIFY)])
        with start_client(tmp_path, f"ws://127.0.0.1:{proxy.port}/") as client:
            with socket.create_connection(("127.0.0.1", client.port), timeout=TIMEOUT) as tcp:
                assert recv_exactly(tcp, 12) == b"RFB 003.008\n"
                # websockify closes 1000 after the target's EOF (its spec, section 5.3);
                # the TCP client stays connected until then, then sees the end.
                line = client.wait_for_log("closed by server")
                assert line.endswith(": closed by server: 1000 Target closed")
                assert tcp.recv(1) == b""
        assert "Traceback" not in client.stderr(), client.stderr()
