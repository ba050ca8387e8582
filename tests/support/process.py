"""Run the real command (``python -m proxy`` or the installed console script) as a subprocess.

Follows STYLE.md §8.5: port from ``free_port()`` (retry once on "Address already in use"),
``start_new_session=True``, an environment without ``WEBSOCKIFY_*``, ``cwd=tmp_path``, stdout and
stderr to files, ``wait_port`` that fails early with the captured stderr, and a teardown of
SIGTERM, wait, SIGKILL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.conftest import TIMEOUT

_POLL = 0.05


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """os.environ without WEBSOCKIFY_* (ConfigArgParse would read them as options)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBSOCKIFY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def console_script(name: str = "websockify") -> Path:
    """The console script installed next to sys.executable (never one found on PATH)."""
    return Path(sys.executable).parent / name


def ended(pid: int) -> bool:
    """Whether process ``pid`` has exited; a zombie not yet reaped by its parent counts."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # "pid (comm) state ...": comm may hold ")"


class ProcessDied(AssertionError):
    """The process exited while the test waited for it."""


def process_age(pid: int) -> float:
    """Seconds since process ``pid`` started (Linux /proc, in clock ticks: 10 ms steps)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
    return float(Path("/proc/uptime").read_text().split()[0]) - started


def stop_popen(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process this test started, then SIGKILL it if it is still running after
    twice the timeout (no-op if it already ended)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(2 * TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(TIMEOUT)


def wait_port(
    port: int,
    deadline: float,
    proc: subprocess.Popen[bytes] | None = None,
    stderr_path: Path | None = None,
) -> None:
    """Poll until 127.0.0.1:port accepts a connection (deadline is a time.monotonic() value).

    Fails early (ProcessDied) if ``proc`` exited, with its captured stderr in the message.
    """
    while True:
        if proc is not None and proc.poll() is not None:
            err = stderr_path.read_text(errors="replace") if stderr_path else ""
            raise ProcessDied(f"process exited with status {proc.returncode}; stderr:\n{err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            err = stderr_path.read_text(errors="replace") if stderr_path else ""
            raise AssertionError(f"port {port} not accepting connections in time; stderr:\n{err}")
        time.sleep(_POLL)


class ProxyProcess:
    """The proxy command as a subprocess, bound to 127.0.0.1:port, proxying to backend_port.

    ``with ProxyProcess(tmp_path, backend_port, "-v") as proxy: ...`` starts it and waits for the
    port; leaving the block stops it (SIGTERM to the process group, then SIGKILL if needed).
    """

    def __init__(
        self,
        tmp_path: Path,
        backend_port: int,
        *args: str,
        command: Sequence[str] | None = None,
        backend_host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        positionals: Sequence[str] | None = None,
        wait_for_port: bool = True,
    ) -> None:
        self.tmp_path = tmp_path
        self.backend_port = backend_port
        self.backend_host = backend_host
        self.args = list(args)
        self.command = list(command) if command is not None else [sys.executable, "-m", "proxy"]
        #: Extra environment variables (on top of clean_env()).
        self.env = dict(env or {})
        #: Replaces "127.0.0.1:PORT BACKEND" (e.g. for --unix-listen); "{port}" is filled in.
        self.positionals = list(positionals) if positionals is not None else None
        #: Wait for the TCP port to accept connections in start().
        self.wait_for_port = wait_for_port
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._attempt = 0
        #: True once the port accepted a connection (the process started successfully).
        self.started = False
        self.stdout_path = tmp_path / "proxy-stdout.txt"
        self.stderr_path = tmp_path / "proxy-stderr.txt"

    # -- lifecycle ---------------------------------------------------------------------------

    def argv(self, port: int) -> list[str]:
        if self.positionals is not None:
            return [*self.command, *(p.format(port=port) for p in self.positionals), *self.args]
        return [
            *self.command,
            f"127.0.0.1:{port}",
            f"{self.backend_host}:{self.backend_port}",
            *self.args,
        ]

    def start(self) -> ProxyProcess:
        for attempt in range(2):
            self._attempt = attempt
            self.port = free_port()
            self._spawn()
            if not self.wait_for_port:
                return self
            try:
                wait_port(self.port, time.monotonic() + 2 * TIMEOUT, self.proc, self.stderr_path)
                self.started = True
                return self
            except ProcessDied:
                if attempt == 0 and "Address already in use" in self.stderr():
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self) -> None:
        suffix = f".{self._attempt}" if self._attempt else ""
        self.stdout_path = self.tmp_path / f"proxy-stdout{suffix}.txt"
        self.stderr_path = self.tmp_path / f"proxy-stderr{suffix}.txt"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv(self.port),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.tmp_path,
                env={**clean_env(), **self.env},
                start_new_session=True,
            )

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = TIMEOUT) -> int:
        assert self.proc is not None
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def stop(self, signum: int = signal.SIGTERM) -> int | None:
        """Send ``signum`` to the process group, wait, then SIGKILL if it is still running.

        Returns the exit status after ``signum`` (None if it had to be killed).
        """
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            return self.returncode
        self.send_signal(signum)
        try:
            return self.wait(2 * TIMEOUT)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self.proc.wait(TIMEOUT)
            self.returncode = None
            return None

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    # -- logs --------------------------------------------------------------------------------

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr_lines(self) -> list[str]:
        return self.stderr().splitlines()

    def wait_for_log(self, needle: str, timeout: float = TIMEOUT) -> str:
        """Poll stderr until a line containing ``needle`` appears; return that line."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stderr_lines():
                if needle in line:
                    return line
            if time.monotonic() >= deadline:
                raise AssertionError(f"{needle!r} not logged; stderr:\n{self.stderr()}")
            time.sleep(_POLL)

    def wait_for_lines(self, n: int, timeout: float = TIMEOUT) -> list[str]:
        """Poll stderr until it has at least ``n`` complete lines; return them."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr()
            lines = text.splitlines()
            if not text.endswith("\n") and lines:
                lines = lines[:-1]
            if len(lines) >= n:
                return lines
            if time.monotonic() >= deadline:
                raise AssertionError(f"expected {n} lines on stderr, got:\n{text}")
            time.sleep(_POLL)
