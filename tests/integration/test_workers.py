"""``--workers N`` on the real command: N processes on one listening socket (issue 8,
proxy/process/workers.py, docs/scaling.rst).

Which worker takes a connection is the kernel's choice; to put a session in a given worker
the tests stop the other one (SIGSTOP) while connecting, so it cannot accept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from proxy.process.runner import SHUTDOWN_GRACE
from proxy.process.workers import KILL_AFTER, RESTART_MIN
from tests.conftest import TIMEOUT, scaled
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.inprocess import wait_for
from tests.support.process import (ProxyProcess, clean_env, ended, free_port, process_age,
                                   wait_port)
from tests.support.wsclient import WSClient, echo_session, raw_http, upgrade_request

pytestmark = pytest.mark.integration


def workers_of(proxy: ProxyProcess) -> list[int]:
    """The pids of the proxy's child processes (from /proc)."""
    assert proxy.proc is not None
    return children_of(proxy.proc.pid)


def children_of(parent: int) -> list[int]:
    return sorted(int(entry) for entry in os.listdir("/proc")
                  if entry.isdigit() and _ppid(int(entry)) == parent)


def _ppid(pid: int) -> int:
    """The parent of ``pid`` (0 once it exited); "pid (comm) state ppid ...", where comm
    may hold spaces, so split after the last ")"."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def two_workers(proxy: ProxyProcess) -> list[int]:
    found: list[int] = []

    def ready() -> bool:
        found[:] = workers_of(proxy)
        return len(found) == 2
    assert wait_for(ready, "two workers")
    return found


@contextmanager
def only(worker: int, others: list[int]) -> Iterator[None]:
    """While inside, every worker but ``worker`` is stopped (SIGSTOP), so it takes all."""
    stopped = [pid for pid in others if pid != worker]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def session_in(worker: int, pids: list[int], port: int) -> WSClient:
    """An open session that ``worker`` relays (past the handshake, one echo done)."""
    with only(worker, pids):
        client = WSClient.connect(port)
        client.echo(b"ping")
    return client


def test_one_banner_and_every_worker_serves(start_proxy: StartProxy,
                                            echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--workers", "2")
    pids = two_workers(proxy)
    for worker in pids:
        with only(worker, pids):
            echo_session(proxy.port, f"served by {worker}".encode())
    lines = proxy.stderr_lines()
    assert lines.count("WebSocket server settings:") == 1
    assert lines.count("  - 2 worker processes") == 1
    assert sum("  - proxying from" in line for line in lines) == 1


def wait_past_restart_min(pid: int) -> None:
    """Until worker ``pid`` is old enough to be restarted when it dies: a worker dying
    sooner is a crash loop at start, and the group stops (proxy.process.workers)."""
    # The margin covers the parent's clock starting after the fork and /proc's 10 ms ticks.
    wait_for(lambda: process_age(pid) > RESTART_MIN + 0.1, "the worker to be past RESTART_MIN")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_workers_do_not_spin(start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    """A shared listener must not make the accept loop poll without waiting (a bug the
    benchmark found: a non-blocking listener turned socketserver's poll timeout into 0)."""
    proxy = start_proxy(echo_backend.port, "--workers", "2")
    pids = two_workers(proxy)
    before = [cpu_seconds(pid) for pid in pids]
    time.sleep(1.0)  # not a wait: the window the CPU time is measured over
    used = [cpu_seconds(pid) - was for pid, was in zip(pids, before)]
    assert all(seconds < scaled(0.2) for seconds in used), used


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_to_the_group_closes_every_session_1001(
        start_proxy: StartProxy, echo_backend: EchoBackend, signum: int) -> None:
    """The whole group gets the signal (a terminal's Ctrl-C, systemd's control-group
    kill): each session is closed once with 1001 and the command exits 0."""
    proxy = start_proxy(echo_backend.port, "--workers", "2")
    pids = two_workers(proxy)
    clients = [session_in(worker, pids, proxy.port) for worker in pids]
    started = time.monotonic()
    proxy.send_signal(signum)
    for client in clients:
        with client:
            assert client.recv_close().code == 1001
    assert proxy.wait(TIMEOUT) == 0
    assert time.monotonic() - started < scaled(3)
    assert all(ended(pid) for pid in pids)
    assert proxy.stderr_lines().count("In exit") == 2  # one per worker, no second stop


def test_drain_survives_the_group_signal(start_proxy: StartProxy,
                                         echo_backend: EchoBackend) -> None:
    """SIGTERM to the group reaches each worker once (via the parent): the drain goes on."""
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--drain-timeout", "20")
    pids = two_workers(proxy)
    with session_in(pids[0], pids, proxy.port) as client:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait_for_log("Draining: waiting up to 20s for 1 open connection(s)")
        time.sleep(0.5)  # not a wait: a window for a second SIGTERM to end the drain
        client.send_binary(b"still here")
        assert client.recv_bytes(10) == b"still here"
        assert "Drain interrupted" not in proxy.stderr()
        client.close(1000)
        client.recv_close()
    assert proxy.wait(TIMEOUT) == 0


def test_killed_parent_takes_its_workers(start_proxy: StartProxy,
                                         echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--workers", "2")
    pids = two_workers(proxy)
    assert proxy.proc is not None
    with session_in(pids[1], pids, proxy.port) as client:
        os.kill(proxy.proc.pid, signal.SIGKILL)
        assert client.recv_close().code == 1001  # the worker closed it on its way out
    assert wait_for(lambda: all(ended(pid) for pid in pids), "the workers gone")


def test_a_crashed_worker_is_restarted(start_proxy: StartProxy,
                                       echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--workers", "2")
    first, second = two_workers(proxy)
    wait_past_restart_min(first)
    os.kill(first, signal.SIGKILL)
    line = proxy.wait_for_log("restarting it")
    assert line.endswith(f"worker 1 (pid {first}) exited with signal 9; restarting it"), line
    pids: list[int] = []

    def replaced() -> bool:
        pids[:] = workers_of(proxy)
        return len(pids) == 2 and first not in pids
    assert wait_for(replaced, "a new worker in place of the killed one")
    assert second in pids
    new = next(pid for pid in pids if pid != second)
    with only(new, pids):
        echo_session(proxy.port, b"served by the new worker")


def test_max_connections_counts_every_worker(start_proxy: StartProxy,
                                             echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--max-connections", "1")
    pids = two_workers(proxy)
    with session_in(pids[0], pids, proxy.port) as client:
        with only(pids[1], pids):
            refused = raw_http(proxy.port, upgrade_request())
        client.close(1000)
        client.recv_close()
    assert (refused.status, refused.reason) == (503, "Too many connections")
    # The first session ended: the shared count goes down (no worker stopped here, as the
    # one that relayed it may still be on its way to counting it out).
    assert wait_for(lambda: raw_http(proxy.port, upgrade_request()).status == 101,
                    "a session admitted again")


def test_sighup_reopens_the_log_file_in_every_process(start_proxy: StartProxy,
                                                      echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--log-file", "ws.log")
    pids = two_workers(proxy)
    log = proxy.tmp_path / "ws.log"
    assert wait_for(lambda: "proxying from" in log.read_text(), "the banner in the log")
    log.rename(proxy.tmp_path / "ws.log.1")
    assert proxy.proc is not None
    os.kill(proxy.proc.pid, signal.SIGHUP)  # to the parent only: it forwards
    assert wait_for(lambda: log.exists() and
                    log.read_text().count(f"SIGHUP: reloaded log file {log}") == 3,
                    "three reopened log files")
    for worker in pids:
        with only(worker, pids):
            echo_session(proxy.port, b"logged")
    assert wait_for(lambda: log.read_text().count("connecting to:") == 2, "two sessions logged")
    assert not any(ended(pid) for pid in pids)


def test_unix_listen_file_stays_until_the_parent_exits(start_proxy: StartProxy,
                                                       echo_backend: EchoBackend,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "ws.sock"
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--unix-listen", str(path),
                        positionals=[f"127.0.0.1:{echo_backend.port}"], wait_for_port=False)
    assert wait_for(lambda: len(workers_of(proxy)) == 2 and path.exists(), "two workers")
    first = workers_of(proxy)[0]
    wait_past_restart_min(first)
    os.kill(first, signal.SIGKILL)
    proxy.wait_for_log("restarting it")
    assert path.exists()  # a worker's exit does not remove the parent's socket file
    proxy.send_signal(signal.SIGTERM)
    # What is checked is that the file goes with the parent, not how fast: allow for the
    # supervisor's own deadline (a worker that has not stopped by then is killed). One
    # fresh-clone run on a loaded machine took over 5 s here; not root-caused.
    assert proxy.wait(scaled(SHUTDOWN_GRACE + KILL_AFTER) + TIMEOUT) == 0
    assert not path.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--workers", "0", "1", "h:2"], "--workers must be at least 1"),
    (["--workers", "2", "--run-once", "1", "h:2"], "--workers cannot be used with --run-once"),
    (["--workers", "2", "--inetd", "h:2"], "--workers cannot be used with --inetd"),
    (["--workers", "2", "1", "--", "true"], "--workers cannot be used with a wrapped command"),
])
def test_usage_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "proxy", *argv], capture_output=True,
                            env=clean_env(), cwd=tmp_path, timeout=2 * TIMEOUT, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().endswith(f"websockify: error: {message}\n")


def test_daemon_with_workers(tmp_path: Path, echo_backend: EchoBackend) -> None:
    """The daemon (pid file) is the parent; its workers serve, and stop with it."""
    port = free_port()
    argv = [sys.executable, "-m", "proxy", "--daemon", "--workers", "2", "--pid-file",
            "proxy.pid", "--log-file", "proxy.log", f"127.0.0.1:{port}",
            f"127.0.0.1:{echo_backend.port}"]
    result = subprocess.run(argv, cwd=tmp_path, env=clean_env(), capture_output=True,
                            timeout=2 * TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    pid_file = tmp_path / "proxy.pid"
    assert wait_for(pid_file.exists, "the pid file")
    pid = int(pid_file.read_text())
    workers: list[int] = []
    try:
        wait_port(port, time.monotonic() + 2 * TIMEOUT)

        def forked() -> bool:
            workers[:] = children_of(pid)
            return len(workers) == 2
        assert wait_for(forked, "two workers")
        echo_session(port, b"daemon workers")
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: ended(pid) and all(ended(w) for w in workers),
                    "the daemon and its workers gone")
    assert not pid_file.exists()
    assert (tmp_path / "proxy.log").read_text().count("In exit") == 2
