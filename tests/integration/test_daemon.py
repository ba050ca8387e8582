"""``--daemon`` and ``--pid-file`` on the real command (spec §7.5, issue 10)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.support.backends import EchoBackend
from tests.support.process import clean_env, ended, free_port, wait_port
from tests.support.wsclient import WSClient

pytestmark = pytest.mark.integration


def wait_gone(pid: int, timeout: float = 2 * TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ended(pid):
        if time.monotonic() >= deadline:
            raise AssertionError(f"process {pid} still running")
        time.sleep(0.05)


def test_daemon_returns_at_once_and_serves(tmp_path: Path, echo_backend: EchoBackend) -> None:
    port = free_port()
    # Relative paths: resolved against the starting directory before the daemon's chdir.
    argv = [sys.executable, "-m", "proxy", "--daemon", "--pid-file", "run/proxy.pid",
            "--log-file", "proxy.log", "--record", "rec",
            f"127.0.0.1:{port}", f"127.0.0.1:{echo_backend.port}"]
    (tmp_path / "run").mkdir()
    started = time.monotonic()
    result = subprocess.run(argv, cwd=tmp_path, env=clean_env(), capture_output=True,
                            timeout=2 * TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < TIMEOUT
    # The banner is printed before detaching, the "proxying from" line after it.
    assert b"  - Backgrounding (daemon)" in result.stderr
    assert b"proxying from" not in result.stderr
    pid_file = tmp_path / "run" / "proxy.pid"
    deadline = time.monotonic() + TIMEOUT
    while not pid_file.exists():  # written by the daemon, maybe after the command returned
        assert time.monotonic() < deadline, "no pid file"
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    try:
        assert pid != os.getpid()
        wait_port(port, time.monotonic() + 2 * TIMEOUT)
        with WSClient.connect(port) as client:
            client.send_binary(b"daemon")
            assert client.recv_bytes(6) == b"daemon"
        status = Path(f"/proc/{pid}/status").read_text()
        assert "Umask:\t0022" in status  # websockify sets 0 (§13.15)
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        # A new session whose leader has exited: it can never get a controlling terminal.
        assert os.getsid(pid) not in (pid, os.getsid(0))
        assert os.readlink(f"/proc/{pid}/fd/1") == "/dev/null"
        log = (tmp_path / "proxy.log").read_text()
        assert "proxying from" in log and "Plain non-SSL (ws://) WebSocket connection" in log
        assert any(tmp_path.glob("rec.*"))  # the relative --record path still works
    finally:
        os.kill(pid, signal.SIGTERM)
        try:
            wait_gone(pid)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            raise
    assert not pid_file.exists()
    assert "In exit" in (tmp_path / "proxy.log").read_text()


def test_pid_file_without_daemon(tmp_path: Path, echo_backend: EchoBackend) -> None:
    port = free_port()
    with open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--pid-file", "proxy.pid", f"127.0.0.1:{port}",
             f"127.0.0.1:{echo_backend.port}"], cwd=tmp_path, env=clean_env(),
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    try:
        wait_port(port, time.monotonic() + 2 * TIMEOUT, proc, tmp_path / "err.txt")
        assert (tmp_path / "proxy.pid").read_text() == f"{proc.pid}\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(2 * TIMEOUT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(TIMEOUT)
    assert not (tmp_path / "proxy.pid").exists()


def test_daemon_bind_failure_is_reported_before_detaching(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "proxy", "--daemon", f"127.0.0.1:{port}", "127.0.0.1:1"],
            cwd=tmp_path, env=clean_env(), capture_output=True, timeout=2 * TIMEOUT,
            check=False)
    assert result.returncode == 1
    assert b"Address already in use" in result.stderr
