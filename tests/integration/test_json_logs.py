"""``--log-format json`` on the real command is JSON line for line, and load-balancer checks
stay out of the session records (issue #16 part 4, proxy/observe/jsonlog.py, docs/logging.rst)."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.inprocess import wait_for
from tests.support.process import ProxyProcess
from tests.support.wsclient import echo_session, raw_http

pytestmark = pytest.mark.integration

#: An auth plugin whose failure is not an AuthenticationError: the handler's catch-all
#: logs "handler exception: ..." and, with -v, the traceback.
BOOM_PLUGIN = '''
class Boom:
    def __init__(self, src=None):
        pass

    def authenticate(self, headers, target_host, target_port):
        raise RuntimeError("boom in the plugin")
'''


UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


def objects(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object; fails on the first line that is not one."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            parsed = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from exc
        assert isinstance(parsed, dict), line
        found.append(parsed)
    return found


def messages(proxy: ProxyProcess) -> list[str]:
    return [obj["message"] for obj in objects(proxy.stderr()) if "message" in obj]


def get(port: int, path: str) -> int:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    return raw_http(port, request.encode()).status


def port_probe(port: int) -> None:
    """What a TCP health check does: connect, send nothing, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
        pass


def test_every_line_on_stderr_in_the_log_file_and_to_syslog_is_json(
        tmp_path: Path, start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    """The banner, a session, a reload line and "In exit": `jq .` reads all of it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as syslog:
        syslog.bind(("127.0.0.1", 0))
        syslog.settimeout(TIMEOUT)
        proxy = start_proxy(echo_backend.port, "--log-format", "json", "--log-file", "ws.log",
                            "--syslog", f"127.0.0.1:{syslog.getsockname()[1]}")
        echo_session(proxy.port, b"hello")
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_for_log("SIGHUP: reloaded log file")
        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(TIMEOUT) == 0
        datagrams: list[bytes] = []
        while not datagrams or b"In exit" not in datagrams[-1]:
            datagrams.append(syslog.recv(65536))
    said = messages(proxy)
    assert said[:4] == ["WebSocket server settings:", f"  - Listen on 127.0.0.1:{proxy.port}",
                        "  - No SSL/TLS support (no cert file)",
                        f"  - proxying from 127.0.0.1:{proxy.port} to "
                        f"127.0.0.1:{echo_backend.port}"]
    assert f"SIGHUP: reloaded log file {proxy.tmp_path / 'ws.log'}" in said
    assert said[-1] == "In exit"
    first = objects(proxy.stderr())[0]
    assert (first["level"], first["logger"]) == ("info", "proxy.runner")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    sessions = [obj for obj in objects(proxy.stderr()) if obj.get("status") == 101]
    assert len(sessions) == 1 and sessions[0]["bytes_from_target"] == 5
    assert objects((proxy.tmp_path / "ws.log").read_text()) == objects(proxy.stderr())
    head = re.compile(rb"<\d+>1 \S+ \S+ websockify \d+ - - ")
    from_syslog = [json.loads(head.sub(b"", datagram, count=1)) for datagram in datagrams]
    assert from_syslog == objects(proxy.stderr())


def test_a_traceback_is_a_field_of_its_line(tmp_path: Path,
                                            echo_backend: EchoBackend) -> None:
    """(Not start_proxy: its teardown rejects any "Traceback" in stderr.)"""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "boomplugin.py").write_text(BOOM_PLUGIN)
    with ProxyProcess(tmp_path, echo_backend.port, "--log-format", "json", "-v",
                      "--auth-plugin", "boomplugin.Boom",
                      env={"PYTHONPATH": str(plugins)}) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as sock:
            sock.sendall(UPGRADE)
            assert sock.recv(65536) == b""  # the catch-all closes without an answer
        line = proxy.wait_for_log("Traceback")
        said = messages(proxy)
        proxy.stop()
    obj = json.loads(line)
    assert obj["traceback"].startswith("Traceback (most recent call last):\n")
    assert obj["traceback"].endswith("RuntimeError: boom in the plugin")
    assert (obj["level"], obj["message"]) == ("debug", "exception")
    assert "handler exception: boom in the plugin" in said


@pytest.mark.parametrize("log_format", ["json", "both"])
def test_probes_get_no_record_at_the_default_verbosity(
        start_proxy: StartProxy, echo_backend: EchoBackend, log_format: str) -> None:
    proxy = start_proxy(echo_backend.port, "--log-format", log_format,
                        "--health-path", "/healthz", "--metrics-path", "/metrics")
    assert get(proxy.port, "/healthz") == 200
    assert get(proxy.port, "/metrics") == 200
    port_probe(proxy.port)
    echo_session(proxy.port, b"a session")
    proxy.wait_for_log('"status":101')
    # A probe's thread may still be finishing: wait until only the scrape itself is open.
    wait_for(lambda: "\nwebsockify_connections_open 1\n" in
             raw_http(proxy.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n").body.decode(), "the probes ended")
    records = [line for line in proxy.stderr_lines() if line.startswith('{"time":')
               and '"peer":' in line]
    assert len(records) == 1, records
    assert '"status":101' in records[0]


def test_verbose_shows_the_probe_records(start_proxy: StartProxy,
                                         echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--log-format", "json", "-v",
                        "--health-path", "/healthz")
    assert get(proxy.port, "/healthz") == 200
    port_probe(proxy.port)
    line = proxy.wait_for_log('"path":"/healthz"')
    assert json.loads(line)["status"] == 200

    def silent() -> list[dict[str, Any]]:
        return [obj for obj in objects(proxy.stderr())
                if "peer" in obj and obj["method"] is None]
    # The readiness check of the test harness and the probe above: connected, sent nothing.
    assert wait_for(lambda: len(silent()) >= 2, "the port probes' records")
