"""``--daemon`` and ``--pid-file`` on the real command (spec §7.5, issue 10)."""

from __future__ import annotations

import http.client
import os
import re
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
from tests.support.waiting import wait_for
from tests.support.wsclient import WSClient

pytestmark = pytest.mark.integration


def wait_gone(pid: int, timeout: float = 2 * TIMEOUT) -> None:
    wait_for(lambda: ended(pid), f"process {pid} to end", timeout)


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
    pid = int(pid_file.read_text())  # written before the command returned (#16)
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


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (SigCgt in /proc/PID/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def test_pid_file_without_daemon(tmp_path: Path, echo_backend: EchoBackend) -> None:
    port = free_port()
    with open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--pid-file", "proxy.pid", f"127.0.0.1:{port}",
             f"127.0.0.1:{echo_backend.port}"], cwd=tmp_path, env=clean_env(),
            stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    try:
        wait_port(port, time.monotonic() + 2 * TIMEOUT, proc, tmp_path / "err.txt")
        # The stop signals are caught before the port is bound (a SIGTERM sooner is
        # noted and acted on); the pid file is written a moment after it answers.
        assert catches(proc.pid, signal.SIGTERM) and catches(proc.pid, signal.SIGHUP)
        wait_for(lambda: (tmp_path / "proxy.pid").exists() or None, "the pid file")
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


def start_daemon(tmp_path: Path, *args: str, inherited: int = 0) -> int:
    """Run ``--daemon`` with stdio in a file (no pipe whose EOF would wait for the daemon).

    ``inherited``: descriptors a careless launcher leaves open; the daemon closes each
    of them while detaching, which makes a slow start easy to observe.
    """
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(inherited)]
    try:
        with open(tmp_path / "err.txt", "wb") as err:
            return subprocess.run(
                [sys.executable, "-m", "proxy", "--daemon", *args], cwd=tmp_path,
                env=clean_env(), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                pass_fds=fds, timeout=2 * TIMEOUT, check=False).returncode
    finally:
        for fd in fds:
            os.close(fd)


#: Descriptors left open to the daemon: closing them while detaching takes some ms.
INHERITED = 4000


def stop_late_daemon(pid_file: Path) -> None:
    """Stop a daemon whose pid file appeared only after the command returned (the bug)."""
    if wait_for(pid_file.exists, "the late pid file", default=True):
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)


def test_the_pid_file_exists_when_the_daemon_command_returns(tmp_path: Path) -> None:
    """#16 Operations 2: the daemon wrote it itself, in 2 of 10 runs after the command exited."""
    for run in range(5):
        pid_file = tmp_path / f"proxy{run}.pid"
        port = free_port()
        assert start_daemon(tmp_path, "--pid-file", pid_file.name,
                            f"127.0.0.1:{port}", "127.0.0.1:1", inherited=INHERITED) == 0
        text = pid_file.read_text() if pid_file.exists() else "no pid file"
        if not re.fullmatch(r"\d+\n", text):
            stop_late_daemon(pid_file)
        assert text != "no pid file", (tmp_path / "err.txt").read_text()
        pid = int(text)
        try:
            assert not ended(pid)
            assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3] == \
                [b"-m", b"proxy"]
            # Answered once serving, SIGTERM handler installed: the pid file is removed.
            assert plain_get_status(port) == 405
        finally:
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid)
        assert not pid_file.exists()


def test_a_sigterm_as_soon_as_the_daemon_command_returns_stops_it_cleanly(
        tmp_path: Path) -> None:
    """A SIGTERM sent while the daemon is still detaching (closing the inherited
    descriptors takes some ms) is noted and acted on once its handlers are in: no pid
    file left, "In exit" logged. (Not a reliable reproducer of the old default-action
    death; test_signals.py's full notify socket holds the window open.)"""
    for run in range(3):
        pid_file, log = tmp_path / f"proxy{run}.pid", tmp_path / f"proxy{run}.log"
        assert start_daemon(tmp_path, "--pid-file", pid_file.name, "--log-file", log.name,
                            f"127.0.0.1:{free_port()}", "127.0.0.1:1",
                            inherited=INHERITED) == 0
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        assert not pid_file.exists(), log.read_text()
        assert log.read_text().endswith("In exit\n")


def plain_get_status(port: int) -> int:
    """The status of a plain GET / (405 without --web, spec §4.2)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    finally:
        conn.close()


def assert_not_listening(port: int) -> None:
    """Nothing accepts on ``port`` (a daemon that gave up closes its listener at once)."""
    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_for(refused, f"port {port} to refuse connections")


@pytest.mark.parametrize("daemonize", [False, True])
def test_a_pid_file_that_cannot_be_written_is_one_line_and_exit_1(
    tmp_path: Path, daemonize: bool
) -> None:
    """#15 Reliability 2: a traceback before; now the command reports it (daemon or not)."""
    port = free_port()
    args = ["--pid-file", "missing/proxy.pid", f"127.0.0.1:{port}", "127.0.0.1:1"]
    if daemonize:
        status = start_daemon(tmp_path, *args)
    else:
        with open(tmp_path / "err.txt", "wb") as err:
            status = subprocess.run([sys.executable, "-m", "proxy", *args], cwd=tmp_path,
                                    env=clean_env(), stdin=subprocess.DEVNULL, stdout=err,
                                    stderr=err, timeout=2 * TIMEOUT, check=False).returncode
    err_text = (tmp_path / "err.txt").read_text()
    assert status == 1, err_text
    assert err_text.splitlines()[-1] == (
        f"cannot write pid file '{tmp_path}/missing/proxy.pid': No such file or directory")
    assert "Traceback" not in err_text
    assert "proxying from" not in err_text
    assert_not_listening(port)
    assert os.listdir(tmp_path) == ["err.txt"]  # no temporary file left behind
