"""Fixtures for tests that launch the real command as a subprocess."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.backends import EchoBackend
from tests.support.process import ProxyProcess

StartProxy = Callable[..., ProxyProcess]


@pytest.fixture
def echo_backend() -> Iterator[EchoBackend]:
    with EchoBackend() as backend:
        yield backend
    assert not backend.errors, backend.errors


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    """Factory: ``start_proxy(backend_port, *args)`` starts the command and waits for its port.

    Teardown stops every started process (SIGTERM, then SIGKILL) and checks that none of them
    printed a Python traceback.
    """
    started: list[ProxyProcess] = []

    def start(backend_port: int, *args: str, **kwargs: object) -> ProxyProcess:
        workdir = tmp_path / f"proxy{len(started)}"
        workdir.mkdir()
        proxy = ProxyProcess(workdir, backend_port, *args, **kwargs)  # type: ignore[arg-type]
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.stop()
    for proxy in started:
        if not proxy.started:
            continue  # the startup failure was already reported with its stderr
        err = proxy.stderr()
        assert "Traceback" not in err, f"the proxy printed a traceback:\n{err}"


@pytest.fixture
def proxy_process(start_proxy: StartProxy, echo_backend: EchoBackend) -> ProxyProcess:
    """The command with default options, proxying to an echo backend."""
    return start_proxy(echo_backend.port)


@pytest.fixture
def clients() -> Iterator[list[ProxyProcess]]:
    """``websockify-client`` processes a test started: stopped after it, none with a
    traceback."""
    started: list[ProxyProcess] = []
    yield started
    for client in started:
        client.stop()
        assert "Traceback" not in client.stderr(), client.stderr()
