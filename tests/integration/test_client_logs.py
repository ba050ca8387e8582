"""``websockify-client``'s ``-v``, ``--log-file``, ``--log-format`` and ``--traffic`` behave
as the server's (issue #20 §2; #15 Reliability 2 §3, #16 Operations 2 §1-2; spec §3.4): the
real client command and the real proxy command on loopback."""

from __future__ import annotations

import json
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from proxy.observe.traffic import CLIENT_LEGEND
from tests.support.backends import EchoBackend
from tests.support.inprocess import wait_for
from tests.support.process import ProxyProcess, clean_env, free_port

pytestmark = pytest.mark.integration

CLIENT = [sys.executable, "-m", "proxy.client"]


def start(tmp_path: Path, started: list[ProxyProcess], url: str, *args: str,
          command: list[str] | None = None) -> ProxyProcess:
    """The client, returned once its banner is logged: no port probe, whose own session
    would add lines to the logs under test."""
    workdir = tmp_path / f"client{len(started)}"
    workdir.mkdir()
    client = ProxyProcess(workdir, 0, *args, command=command or CLIENT,
                          positionals=["127.0.0.1:{port}", url], wait_for_port=False)
    started.append(client.start())
    client.wait_for_log("websockify-client: ")
    return client


def session(client: ProxyProcess, payload: bytes) -> str:
    """Echo ``payload`` through the client, disconnect, wait for the close line; the peer."""
    with socket.create_connection(("127.0.0.1", client.port), timeout=TIMEOUT) as tcp:
        peer = "%s:%d" % tcp.getsockname()[:2]
        tcp.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = tcp.recv(len(payload) - len(got))
            assert chunk, got
            got += chunk
        assert got == payload
    client.wait_for_log(f"{peer}: closed by us")
    return peer


def test_verbose_lines_go_to_stderr_and_to_a_0640_log_file(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    proxy = start_proxy(echo_backend.port)
    url = f"ws://127.0.0.1:{proxy.port}/"
    # umask 0 used to leave a 0666 log file (#15 Reliability 2 §3); the server's is 0640.
    command = ["sh", "-c", 'umask 0 && exec "$0" -m proxy.client "$@"', sys.executable]
    client = start(tmp_path, clients, url, "-v", "--log-file", "client.log", command=command)
    peer = session(client, b"sixteen bytes..\n")
    expected = [f"websockify-client: 127.0.0.1:{client.port} -> {url}",
                f"{peer}: connected to {url}",
                f"{peer}: 16 bytes from the TCP side, {{n}} bytes from the server",
                f"{peer}: closed by us: 1000 Target closed"]
    log = client.tmp_path / "client.log"
    for lines in (client.stderr_lines(), log.read_text().splitlines()):
        # The server's bytes: the echoed frame(s) and its Close; their split is TCP's.
        lines[2] = re.sub(r"side, \d+ bytes", "side, {n} bytes", lines[2])
        assert lines == expected
    assert stat.S_IMODE(log.stat().st_mode) == 0o640


def test_sighup_reopens_the_log_file_and_says_so(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    proxy = start_proxy(echo_backend.port)
    url = f"ws://127.0.0.1:{proxy.port}/"
    client = start(tmp_path, clients, url, "--log-file", "client.log")
    log = client.tmp_path / "client.log"
    log.rename(client.tmp_path / "client.log.1")  # logrotate's create mode
    client.send_signal(signal.SIGHUP)
    assert wait_for(log.exists, "a new log file after SIGHUP")
    line = f"SIGHUP: reloaded log file {log}"
    assert client.wait_for_log("SIGHUP:") == line
    peer = session(client, b"after the hangup")  # still running, still relaying
    assert log.read_text().splitlines() == [line, f"{peer}: connected to {url}",
                                            f"{peer}: closed by us: 1000 Target closed"]
    assert (client.tmp_path / "client.log.1").read_text() == (
        f"websockify-client: 127.0.0.1:{client.port} -> {url}\n")
    bare = start(tmp_path, clients, url)
    bare.send_signal(signal.SIGHUP)
    assert bare.wait_for_log("SIGHUP:") == "SIGHUP: nothing to reload"
    assert bare.proc is not None and bare.proc.poll() is None


def test_log_format_json_makes_every_line_a_json_object(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    proxy = start_proxy(echo_backend.port)
    url = f"ws://127.0.0.1:{proxy.port}/"
    client = start(tmp_path, clients, url, "--log-format", "json")
    peer = session(client, b"as json")
    records = [json.loads(line) for line in client.stderr_lines()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("info", "websockify.client", f"websockify-client: 127.0.0.1:{client.port} -> {url}"),
        ("info", "websockify.client", f"{peer}: connected to {url}"),
        ("info", "websockify.client", f"{peer}: closed by us: 1000 Target closed")]


def test_a_log_file_in_a_missing_directory_is_one_line_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "client.log"  # given relative, reported absolute
    done = subprocess.run([*CLIENT, "--log-file", "missing/client.log", f"127.0.0.1:{free_port()}",
                           "ws://127.0.0.1:9/"], stdin=subprocess.DEVNULL, capture_output=True,
                          cwd=tmp_path, env=clean_env(), timeout=2 * TIMEOUT)
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode() == (
        f"websockify-client: cannot open log file {path}: No such file or directory\n")


def test_traffic_prints_the_client_legend_then_the_markers_of_a_round_trip(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path,
        clients: list[ProxyProcess]) -> None:
    """One echo, seen from the client: ``{`` read from TCP, ``<`` sent to the server, ``}``
    its echo, ``>`` written to TCP; then our Close (``<``) and the server's (``}.``)."""
    proxy = start_proxy(echo_backend.port)
    client = start(tmp_path, clients, f"ws://127.0.0.1:{proxy.port}/", "--traffic")
    session(client, b"hello")
    assert wait_for(lambda: client.stdout().endswith("\n") and
                    len(client.stdout()) > len(CLIENT_LEGEND), "the end of the marker line")
    assert client.stdout() == CLIENT_LEGEND + "{<}><}.\n"
    assert client.stdout_path.read_bytes().startswith(
        b"\nTraffic Legend:\n    }  - WebSocket receive\n")


def test_traffic_with_dash_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([*CLIENT, "--traffic", "-", "ws://127.0.0.1:9/"],
                          stdin=subprocess.DEVNULL, capture_output=True, cwd=tmp_path,
                          env=clean_env(), timeout=2 * TIMEOUT)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode().endswith("websockify-client: error: --traffic writes to "
                                         "standard output, which - uses for data\n")


def test_the_servers_close_code_and_reason_are_logged_and_once_exits_1(
        start_proxy: StartProxy, tmp_path: Path) -> None:
    """A target that refuses: our server accepts the WebSocket, then closes 1011 with its
    reason; the client logs both in its close line (a refused token is a handshake
    refusal, test_client_auth)."""
    proxy = start_proxy(free_port())  # nothing listens there
    client = subprocess.Popen([*CLIENT, "-", f"ws://127.0.0.1:{proxy.port}/"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=clean_env(), start_new_session=True)
    try:
        status = client.wait(2 * TIMEOUT)  # its stdin stays open: the server ends it
    finally:
        if client.poll() is None:
            client.kill()
        out, err = client.communicate(timeout=TIMEOUT)
    assert (status, out) == (1, b"")
    assert err.decode().splitlines()[-1] == (
        "stdio: closed by server: 1011 Failed to connect to downstream server")
