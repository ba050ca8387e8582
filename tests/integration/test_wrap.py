"""Wrap mode on the real command (spec §7.9, issue 10): a small TCP server as the command.

The LD_PRELOAD shim is compiled once per test session into a temporary cache directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wsproto.utilities import LocalProtocolError

from tests.conftest import TIMEOUT
from tests.support.process import ProxyProcess, clean_env, ended, stop_popen
from tests.support.wsclient import WSClient
from tests.support.inprocess import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")),
                       reason="wrap mode needs a C compiler (scripts/test installs gcc as root)"),
]


#: The wrapped command: listens on argv[1] (IPv6 wildcard with "6"), echoes "echo:" + data,
#: exits 3 when a message contains "quit"; writes its pid (and LISTEN_FDS) to files.
SERVER = """
import os, socket, sys
port, family = int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "4"
with open("server.pid", "a") as f:
    f.write(f"{os.getpid()}\\n")
with open("server.env", "w") as f:
    f.write(repr(os.environ.get("LISTEN_FDS")))
sock = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("::" if family == "6" else "0.0.0.0", port))
sock.listen()
while True:
    conn, _ = sock.accept()
    data = conn.recv(100)
    conn.sendall(b"echo:" + data)
    conn.close()
    if b"quit" in data:
        sys.exit(3)
"""


@pytest.fixture(scope="session")
def shim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg-cache")


def launch(tmp_path: Path, cache: Path, *args: str, family: str = "4",
           command: list[str] | None = None) -> ProxyProcess:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    proxy = WrapProcess(tmp_path, cache, list(args),
                        command or [sys.executable, str(script), "{port}", family])
    proxy.start()
    if command is None:
        # The proxy listens before the command does: wait until the command answers.
        try:
            wait_for(lambda: try_echo(proxy.port, b"ready"), "the wrapped command to listen")
        except BaseException:
            proxy.stop()
            raise
    return proxy


def try_echo(port: int, payload: bytes) -> bytes | None:
    """``echo``, or None when the command is not listening (yet): close 1011."""
    try:
        return echo(port, payload)
    except (AssertionError, OSError, LocalProtocolError):
        return None


class WrapProcess(ProxyProcess):
    """``python -m proxy [args] 127.0.0.1:PORT -- COMMAND`` ({port} filled in the command)."""

    def __init__(self, tmp_path: Path, cache: Path, args: list[str], command: list[str]) -> None:
        super().__init__(tmp_path, 0, *args, env={"XDG_CACHE_HOME": str(cache)})
        self.wrapped = command

    def argv(self, port: int) -> list[str]:
        return [*self.command, *self.args, f"127.0.0.1:{port}", "--",
                *(word.format(port=port) for word in self.wrapped)]


def echo(port: int, payload: bytes) -> bytes:
    with WSClient.connect(port) as client:
        client.send_binary(payload)
        return client.recv_bytes(len(payload) + 5)


def server_pids(tmp_path: Path) -> list[int]:
    path = tmp_path / "server.pid"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_exit_mode_proxies_and_propagates_the_status(tmp_path: Path, shim_cache: Path) -> None:
    proxy = launch(tmp_path, shim_cache, "-v")
    try:
        assert echo(proxy.port, b"hello") == b"echo:hello"
        err = proxy.stderr()
        assert f"Starting '{sys.executable} {tmp_path / 'server.py'} {proxy.port} 4'" in err
        assert "connecting to command: '" in err and "(port " in err
        assert echo(proxy.port, b"quit") == b"echo:quit"
        # websockify exits 0 whatever the command returned (§13.12); we return its status.
        assert proxy.wait(2 * TIMEOUT) == 3
        assert "Wrapped command exited (or daemon). Returned 3" in proxy.stderr()
    finally:
        proxy.stop()


def test_the_command_is_stopped_when_the_proxy_exits(tmp_path: Path, shim_cache: Path) -> None:
    proxy = launch(tmp_path, shim_cache)
    try:
        assert echo(proxy.port, b"a") == b"echo:a"
        [pid] = server_pids(tmp_path)
        assert proxy.stop() == 0
        wait_for(lambda: ended(pid), "the wrapped command to end")
    finally:
        proxy.stop()


def test_the_command_dies_with_a_killed_proxy(tmp_path: Path, shim_cache: Path) -> None:
    proxy = launch(tmp_path, shim_cache)
    try:
        assert echo(proxy.port, b"a") == b"echo:a"
        [pid] = server_pids(tmp_path)
        assert proxy.proc is not None
        proxy.proc.kill()  # SIGKILL: no cleanup in the proxy; the kernel signals the child
        proxy.proc.wait(TIMEOUT)
        wait_for(lambda: ended(pid), "the orphaned command to get SIGTERM")
    finally:
        proxy.stop()


def test_ipv6_wildcard_bind_is_moved_too(tmp_path: Path, shim_cache: Path) -> None:
    proxy = launch(tmp_path, shim_cache, family="6")
    try:
        assert echo(proxy.port, b"six") == b"echo:six"
    finally:
        proxy.stop()


def test_ignore_mode_keeps_serving_after_the_command_exits(tmp_path: Path,
                                                           shim_cache: Path) -> None:
    proxy = launch(tmp_path, shim_cache, "-v", "--wrap-mode", "ignore")
    try:
        assert echo(proxy.port, b"quit") == b"echo:quit"
        proxy.wait_for_log("Wrapped command exited (or daemon). Returned 3")
        # The private port is still ours but nobody listens: the target is refused.
        with WSClient.connect(proxy.port) as client:
            assert client.recv_close().code == 1011
        assert proxy.proc is not None and proxy.proc.poll() is None
        assert proxy.stop() == 0
    finally:
        proxy.stop()


def test_respawn_mode_restarts_on_the_same_private_port(tmp_path: Path,
                                                        shim_cache: Path) -> None:
    proxy = launch(tmp_path, shim_cache, "--wrap-mode", "respawn")
    try:
        assert echo(proxy.port, b"quit") == b"echo:quit"
        wait_for(lambda: len(server_pids(tmp_path)) == 2, "the respawned command")
        assert wait_for(lambda: try_echo(proxy.port, b"again"),
                        "the respawned command to listen") == b"echo:again"
        assert proxy.stderr().count("Starting '") == 2
    finally:
        proxy.stop()


def test_respawning_too_fast_is_throttled(tmp_path: Path, shim_cache: Path) -> None:
    proxy = launch(tmp_path, shim_cache, "--wrap-mode", "respawn",
                   command=[sys.executable, "-c", "raise SystemExit(1)"])
    try:
        proxy.wait_for_log("Command respawning too fast")
        time.sleep(0.5)  # not a wait: a window in which no fourth start may come
        # websockify's throttle: three starts within 10 s, then one warning and a pause.
        assert proxy.stderr().count("Starting '") == 3
        assert proxy.stderr().count("Command respawning too fast") == 1
    finally:
        proxy.stop()


def test_listen_variables_are_not_passed_to_the_command(tmp_path: Path,
                                                        shim_cache: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        code = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
                "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
                "os.execv(sys.executable, [sys.executable, '-m', 'proxy', '--', *sys.argv[2:]])")
        with open(tmp_path / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, str(listener.fileno()), sys.executable,
                 str(script), str(port)],
                pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL, stdout=err,
                stderr=err, cwd=tmp_path, start_new_session=True,
                env={**clean_env(), "XDG_CACHE_HOME": str(shim_cache)})
    try:
        wait_for(lambda: (tmp_path / "server.env").exists(), "the command to start")
        assert (tmp_path / "server.env").read_text() == "None"
        assert wait_for(lambda: try_echo(port, b"act"),
                        "the activated, wrapped command") == b"echo:act"
    finally:
        stop_popen(proc)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()


def test_a_clear_error_without_a_compiler(tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    env = {**clean_env(), "PATH": str(empty), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("CC", None)
    result = subprocess.run([sys.executable, "-m", "proxy", "127.0.0.1:1", "--", "true"],
                            capture_output=True, env=env, cwd=tmp_path, timeout=2 * TIMEOUT,
                            check=False)
    assert result.returncode == 1
    assert b"wrap mode needs a C compiler" in result.stderr
    assert b"Traceback" not in result.stderr
    assert b"WebSocket server settings" not in result.stderr  # as websockify: no banner
