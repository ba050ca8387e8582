"""Process modes of the real command: --run-once, --timeout, --idle-timeout, IPv6, Unix
sockets, --inetd, signals, bind failure, the open-file limit, heartbeat and env config."""

from __future__ import annotations

import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import Ping

from tests.conftest import TIMEOUT, scaled
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.process import ProxyProcess, clean_env, free_port
from tests.support.waiting import wait_for
from tests.support.wsclient import WSClient

#: A socket address: a path for AF_UNIX, a tuple for AF_INET and AF_INET6.
Address = str | tuple[Any, ...]

pytestmark = pytest.mark.integration


def wait_exit(proxy: ProxyProcess, limit: float) -> int:
    assert proxy.proc is not None
    return proxy.proc.wait(limit)


@contextmanager
def echo_server(family: int, address: Address) -> Iterator[Address]:
    """A one-thread echo server on an IPv6 or Unix address; yields the bound address."""
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        conns: list[socket.socket] = []
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conns.append(conn)
            threading.Thread(target=pump, args=(conn,), daemon=True).start()
        for conn in conns:
            conn.close()

    def pump(conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        thread.join(TIMEOUT)
        listener.close()


def ws_over(sock: socket.socket) -> WSClient:
    """A WSClient over an already connected socket (Unix or IPv6)."""
    sock.settimeout(TIMEOUT)
    client = WSClient(sock, WSConnection(ConnectionType.CLIENT))
    client.handshake("/", (), (), "localhost")
    return client


def test_run_once_exits_after_the_first_upgraded_connection(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--run-once")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert plain.recv(100).startswith(b"HTTP/1.1 405")
    assert proxy.proc is not None and proxy.proc.poll() is None  # plain HTTP does not end it
    with WSClient.connect(proxy.port) as client:
        client.echo()
        client.close()
        client.recv_close()
    assert wait_exit(proxy, TIMEOUT) == 0
    assert "127.0.0.1: exiting due to --run-once" in proxy.stderr_lines()


def test_timeout_stops_accepting_but_lets_live_connections_finish(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--timeout", "1")
    with WSClient.connect(proxy.port) as client:
        proxy.wait_for_log("listener exit due to --timeout 1", 2 * TIMEOUT)
        with pytest.raises(ConnectionRefusedError):  # websockify accepts and never serves
            socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT).close()
        client.echo(b"still relayed after the timeout")
        assert proxy.proc is not None and proxy.proc.poll() is None
        client.close()
        client.recv_close()
    assert wait_exit(proxy, TIMEOUT) == 0


def test_idle_timeout_exits_once_no_connection_is_live(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--idle-timeout", "1")
    started = time.monotonic()
    assert wait_exit(proxy, 3 * TIMEOUT) == 0
    assert time.monotonic() - started >= 0.5
    assert "listener exit due to --idle-timeout 1" in proxy.stderr_lines()


def test_ipv6_listen_and_target(tmp_path: Path) -> None:
    with echo_server(socket.AF_INET6, ("::1", 0)) as address:
        port = free_port()
        backend_port = address[1]
        proxy = ProxyProcess(tmp_path, 0, positionals=[f"[::1]:{port}", f"[::1]:{backend_port}"],
                             wait_for_port=False)
        with proxy:
            sock = _connect_retry(socket.AF_INET6, ("::1", port), proxy)
            with ws_over(sock) as client:
                client.echo()
        assert f"  - Listen on ::1:{port}" in proxy.stderr_lines()
        assert f"  - proxying from ::1:{port} to ::1:{backend_port}" in proxy.stderr_lines()


def _connect_retry(family: int, address: Address, proxy: ProxyProcess) -> socket.socket:
    """A socket connected to the proxy once it listens (fails at once if it exited)."""
    def attempt() -> socket.socket | None:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(TIMEOUT)
            sock.connect(address)
            return sock
        except OSError:
            sock.close()
            assert proxy.proc is not None and proxy.proc.poll() is None, proxy.stderr()
            return None

    return wait_for(attempt, "the proxy to listen", 2 * TIMEOUT)


def test_unix_target(start_proxy: StartProxy, tmp_path: Path) -> None:
    path = str(tmp_path / "vnc.sock")
    with echo_server(socket.AF_UNIX, path):
        proxy = start_proxy(0, "--unix-target", path,
                            positionals=["127.0.0.1:{port}"])
        with WSClient.connect(proxy.port) as client:
            client.echo(b"over a unix socket")
        lines = proxy.stderr_lines()
        assert f"  - proxying from 127.0.0.1:{proxy.port} to {path}" in lines
        assert any(line.endswith(f"] connecting to unix socket: {path}") for line in lines)


def test_unix_listen_gets_the_mode_and_is_removed_on_exit(tmp_path: Path,
                                                          echo_backend: EchoBackend) -> None:
    path = tmp_path / "ws.sock"
    path.write_text("stale file, replaced at start")
    proxy = ProxyProcess(tmp_path, 0, "--unix-listen", str(path), "--unix-listen-mode", "660",
                         positionals=[f"127.0.0.1:{echo_backend.port}"], wait_for_port=False)
    with proxy:
        sock = _connect_retry(socket.AF_UNIX, str(path), proxy)
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        with ws_over(sock) as client:
            client.echo()
    assert proxy.returncode == 0
    assert not path.exists()  # websockify leaves it behind (§13.20)
    lines = proxy.stderr_lines()
    assert f"  - Listen on unix socket {path}" in lines
    assert f"  - proxying from {path} to 127.0.0.1:{echo_backend.port}" in lines
    assert any(line.startswith(f"{path} - - [") and "Plain non-SSL" in line for line in lines)


def test_inetd_serves_the_listening_socket_on_stdin(tmp_path: Path,
                                                    echo_backend: EchoBackend) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    err = tmp_path / "err.txt"
    with listener, open(err, "wb") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "--inetd",
                                 f"127.0.0.1:{echo_backend.port}"], stdin=listener.fileno(),
                                stdout=subprocess.DEVNULL, stderr=err_file, cwd=tmp_path,
                                env=clean_env(), start_new_session=True)
    try:
        with WSClient.connect(port) as client:
            client.echo()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    lines = err.read_text().splitlines()
    assert "  - Listen for inetd connections" in lines
    assert f"  - proxying from inetd to 127.0.0.1:{echo_backend.port}" in lines


def test_sigterm_closes_live_clients_with_1001_and_exits_0(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port)
    clients = [WSClient.connect(proxy.port) for _ in range(3)]
    try:
        for client in clients:
            client.echo()
        started = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        for client in clients:
            close = client.recv_close()
            assert (close.code, close.reason) == (1001, "Server shutting down")
            client.reply_close(close)
        assert wait_exit(proxy, TIMEOUT) == 0
        assert time.monotonic() - started < scaled(2.0)
    finally:
        for client in clients:
            client.close_socket()
    assert proxy.stderr_lines()[-1] == "In exit"


def test_sigterm_exits_within_2s_even_if_clients_never_answer(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port)
    with WSClient.connect(proxy.port) as client:
        client.echo()
        started = time.monotonic()
        proxy.send_signal(signal.SIGINT)
        assert wait_exit(proxy, TIMEOUT) == 0
        assert time.monotonic() - started < scaled(2.0)


def test_a_port_in_use_is_a_clear_error_and_exit_1(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "proxy", f"127.0.0.1:{port}", "127.0.0.1:9"],
                              capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path,
                              env=clean_env())
    assert proc.returncode == 1  # websockify exits 0 here (§13.13)
    last = proc.stderr.splitlines()[-1]
    assert last == "Opening socket failed: [Errno 98] Address already in use"
    assert "Traceback" not in proc.stderr


def test_out_of_file_descriptors_backs_off_instead_of_spinning(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path) -> None:
    limit = 48

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proxy = ProxyProcess(tmp_path, echo_backend.port)
    proxy.port = free_port()
    with open(proxy.stderr_path, "wb") as err:
        proxy.proc = subprocess.Popen(proxy.argv(proxy.port), stdout=subprocess.DEVNULL,
                                      stderr=err, cwd=tmp_path, env=clean_env(),
                                      start_new_session=True, preexec_fn=low_limit)
    held: list[socket.socket] = []
    try:
        _connect_retry(socket.AF_INET, ("127.0.0.1", proxy.port), proxy).close()
        for _ in range(limit):  # each idle connection costs the proxy one fd
            held.append(socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT))
        proxy.wait_for_log("Too many open files", 2 * TIMEOUT)
        before = _cpu_seconds(proxy.proc.pid)
        time.sleep(1.0)  # not a wait: the window the CPU time is measured over
        # websockify's loop spins at ~97 %
        assert _cpu_seconds(proxy.proc.pid) - before < scaled(0.5)
        warnings = [line for line in proxy.stderr_lines() if "Too many open files" in line]
        assert len(warnings) <= 4  # at most once a second
        for sock in held:
            sock.close()
        held.clear()
        with WSClient.connect(proxy.port, timeout=2 * TIMEOUT) as client:
            client.echo()  # served again once descriptors are free
    finally:
        for sock in held:
            sock.close()
        proxy.stop()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_heartbeat_from_the_environment_pings_the_client(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, env={"WEBSOCKIFY_HEARTBEAT": "1"})
    with WSClient.connect(proxy.port) as client:
        started = time.monotonic()
        event = client.next_event(3 * TIMEOUT)
        assert event == Ping(payload=b"")
        assert 0.5 < time.monotonic() - started < scaled(2.5)


def test_a_websockify_style_user_plugin_runs_unchanged(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path) -> None:
    (tmp_path / "legacy_plugins.py").write_text(
        "from websockify.auth_plugins import AuthenticationError, BasePlugin\n"
        "from websockify.token_plugins import BasePlugin as TokenBase\n"
        "class Secret(BasePlugin):\n"
        "    def authenticate(self, headers, target_host, target_port):\n"
        "        if headers.get('X-Secret') != self.source:\n"
        "            raise AuthenticationError(response_code=403, response_msg='Go away')\n"
        f"class Table(TokenBase):\n"
        f"    def lookup(self, token):\n"
        f"        return ('127.0.0.1', str({echo_backend.port})) if token == 'vnc1' else None\n")
    proxy = start_proxy(0, "--token-plugin", "legacy_plugins.Table", "--auth-plugin",
                        "legacy_plugins.Secret", "--auth-source", "s3cr3t",
                        positionals=["127.0.0.1:{port}"], env={"PYTHONPATH": str(tmp_path)})
    with WSClient.connect(proxy.port, "/?token=vnc1",
                          extra_headers=[("X-Secret", "s3cr3t")]) as client:
        client.echo()
    from tests.support.wsclient import HandshakeRejected

    with pytest.raises(HandshakeRejected) as info:
        WSClient.connect(proxy.port, "/?token=vnc1", extra_headers=[("X-Secret", "nope")])
    assert info.value.status == 403
    with pytest.raises(HandshakeRejected) as info:
        WSClient.connect(proxy.port, "/?token=other", extra_headers=[("X-Secret", "s3cr3t")])
    assert info.value.status == 404
    lines = proxy.stderr_lines()
    assert f"  - proxying from 127.0.0.1:{proxy.port} to targets generated by Table" in lines
    assert "handler exception: 403 Go away" in lines
    assert "127.0.0.1: Token 'other' not found" in lines
