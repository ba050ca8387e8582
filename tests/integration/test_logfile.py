"""``--log-file`` on the real command: rotation without a signal (#16 Operations 2 §2), the
mode of a new file and a file that cannot be opened (#15 Reliability 2 §3)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.inprocess import wait_for
from tests.support.process import clean_env, free_port
from tests.support.wsclient import echo_session

pytestmark = pytest.mark.integration


@pytest.mark.slow  # the handler looks at the path at most once a second
def test_a_log_file_renamed_under_a_running_proxy_is_followed_by_a_new_one(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    """logrotate's default ``create`` mode, no SIGHUP: the next lines go to a new file at
    the old path (today's main keeps writing to the renamed file)."""
    proxy = start_proxy(echo_backend.port, "--log-file", "ws.log")
    log = proxy.tmp_path / "ws.log"
    assert wait_for(lambda: "proxying from" in log.read_text(), "the banner in the log")
    log.rename(proxy.tmp_path / "ws.log.1")

    def rotated() -> bool:
        echo_session(proxy.port, b"logged")
        return log.exists() and "connecting to:" in log.read_text()
    assert wait_for(rotated, "lines in a new file at the old path", timeout=2 * TIMEOUT)
    assert "proxying from" not in log.read_text()
    assert "proxying from" in (proxy.tmp_path / "ws.log.1").read_text()
    assert stat.S_IMODE(log.stat().st_mode) & 0o007 == 0  # not world-readable


def test_a_log_file_created_under_umask_0_is_0640(start_proxy: StartProxy,
                                                  echo_backend: EchoBackend) -> None:
    """``-D`` from a shell with umask 0 used to leave a 0666 log file."""
    command = ["sh", "-c", 'umask 0 && exec "$0" -m proxy "$@"', sys.executable]
    proxy = start_proxy(echo_backend.port, "--log-file", "ws.log", command=command)
    assert stat.S_IMODE((proxy.tmp_path / "ws.log").stat().st_mode) == 0o640


def test_a_log_file_in_a_missing_directory_is_one_line_and_exit_1(
        tmp_path: Path, echo_backend: EchoBackend) -> None:
    path = tmp_path / "missing" / "ws.log"
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "--log-file", str(path), f"127.0.0.1:{free_port()}",
         f"127.0.0.1:{echo_backend.port}"],
        stdin=subprocess.DEVNULL, capture_output=True, cwd=tmp_path, env=clean_env(),
        timeout=2 * TIMEOUT)
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode() == (
        f"websockify: cannot open log file {path}: No such file or directory\n")
    assert not os.path.exists(path.parent)
