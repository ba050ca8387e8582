"""proxy.process.sdnotify: which environment asks for notifications, and who may send them (#16)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from proxy.process import sdnotify


def test_the_variables_are_taken_out_of_the_environment() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "10000000",
           "WATCHDOG_PID": "42", "PATH": "/bin"}
    notifier = sdnotify.from_environ(env, 42)
    assert env == {"PATH": "/bin"}
    assert notifier is not None
    assert (notifier.address, notifier.pid, notifier.watchdog_interval) == (
        "/run/systemd/notify", 42, 5.0)


@pytest.mark.parametrize("env,interval", [
    ({"NOTIFY_SOCKET": "@ns"}, 0.0),
    ({"NOTIFY_SOCKET": "@ns", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 0.0),
    ({"NOTIFY_SOCKET": "@ns", "WATCHDOG_USEC": "2000000"}, 1.0),
    ({"NOTIFY_SOCKET": "@ns", "WATCHDOG_USEC": "soon"}, 0.0),
])
def test_the_watchdog_is_for_this_pid_only(env: dict[str, str], interval: float) -> None:
    notifier = sdnotify.from_environ(env, 42)
    assert notifier is not None
    assert notifier.address == "\0ns"  # the abstract namespace
    assert notifier.watchdog_interval == interval


@pytest.mark.parametrize("value", ["", "vsock:2:1234", "relative/path"])
def test_no_notifier_without_a_unix_socket_address(value: str) -> None:
    assert sdnotify.from_environ({"NOTIFY_SOCKET": value}, 42) is None


def test_another_process_never_sends(tmp_path: Path) -> None:
    """A forked worker inherits the notifier: only the pid that installed it sends."""
    path = str(tmp_path / "n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(0.2)
        sdnotify.Notifier(path, os.getpid() + 1).notify("READY=1")
        with pytest.raises(TimeoutError):
            listener.recv(100)
        sdnotify.Notifier(path, os.getpid()).notify("READY=1")
        assert listener.recv(100) == b"READY=1"


def test_a_missing_socket_does_not_raise(tmp_path: Path) -> None:
    sdnotify.Notifier(str(tmp_path / "gone"), os.getpid()).notify("READY=1")
