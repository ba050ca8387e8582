"""Real third-party servers for the token and scale-out tests: redis-server and HAProxy.

Each runs in the foreground on a free loopback port with its files under a test's
tmp_path, and is ended by its PID (SIGTERM, then SIGKILL). When the binary is missing the
test is skipped with a reason naming the Debian package (``scripts/test`` installs them).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest

from tests.conftest import TIMEOUT
from tests.support.process import free_port, wait_port

S = TypeVar("S", bound="Service")


def require_binary(name: str, package: str) -> str:
    """The path of ``name`` (PATH, then /usr/sbin), or skip the test."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {package}; scripts/test "
                    "installs it with apt-get when it can)")
    return path


class Service:
    """A server process in the foreground; ``with`` starts it and waits for its port."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, time.monotonic() + 2 * TIMEOUT, self.proc, self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(2 * TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(TIMEOUT)


class RedisServer(Service):
    """``redis-server`` without persistence on 127.0.0.1:port."""

    name = "redis"

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        super().__init__(workdir)

    def argv(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self.workdir)]

    def client(self) -> Any:
        redis = pytest.importorskip("redis")
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=TIMEOUT)


class HAProxy(Service):
    """HAProxy in the foreground (``-db``) with the given configuration text.

    ``{port}`` in the text is replaced by the listening port.
    """

    name = "haproxy"

    def __init__(self, workdir: Path, config: str) -> None:
        self.binary = require_binary("haproxy", "haproxy")
        super().__init__(workdir)
        self.config_path = workdir / "haproxy.cfg"
        self.config_path.write_text(config.replace("{port}", str(self.port)))

    def argv(self) -> list[str]:
        return [self.binary, "-db", "-f", str(self.config_path)]
