"""The ``websockify`` import package (issue #18): ``python -m websockify`` and the plugin
modules under websockify's names, importable by any program, without side effects."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.process import clean_env
from tests.support.wsclient import WSClient

pytestmark = pytest.mark.integration


def run_python(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          cwd=tmp_path, env=clean_env(), timeout=6 * TIMEOUT, check=False)


def test_python_m_websockify_serves_like_the_command(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "-v", command=[sys.executable, "-m", "websockify"])
    with WSClient.connect(proxy.port) as client:
        client.send_binary(b"module form")
        assert client.recv_bytes(11) == b"module form"
    assert f"proxying from 127.0.0.1:{proxy.port} to 127.0.0.1:{echo_backend.port}" in \
        proxy.stderr()


def test_python_m_websockify_help_and_errors_match_python_m_proxy(tmp_path: Path) -> None:
    for args in (["--help"], ["--version"], ["--no-such-option", "1", "h:2"]):
        ours = run_python(tmp_path, "-m", "websockify", *args)
        reference = run_python(tmp_path, "-m", "proxy", *args)
        assert (ours.returncode, ours.stdout, ours.stderr) == \
            (reference.returncode, reference.stdout, reference.stderr), args
    assert run_python(tmp_path, "-m", "websockify", "--help").stdout.startswith(
        "Usage: \n    websockify [options] [source_addr:]source_port target_addr:target_port\n")


def test_plugin_modules_import_in_any_program_without_side_effects(tmp_path: Path) -> None:
    # A program that is not the server: no plugin was loaded, no alias was installed.
    program = textwrap.dedent("""
        import sys
        import websockify
        assert "websockify.token_plugins" not in sys.modules
        assert "proxy.serve.server" not in sys.modules and "proxy.access.plugins" not in sys.modules
        from websockify.token_plugins import BasePlugin, ReadOnlyTokenFile, TokenRedis
        from websockify.auth_plugins import AuthenticationError, BasicHTTPAuth
        import proxy.auth, proxy.tokens
        assert BasePlugin is proxy.tokens.BasePlugin
        assert ReadOnlyTokenFile is proxy.tokens.ReadOnlyTokenFile
        assert AuthenticationError is proxy.auth.AuthenticationError
        assert "proxy.serve.server" not in sys.modules and "proxy.access.plugins" not in sys.modules
        assert not [n for n in sys.modules if n == "redis" or n.startswith("jwcrypto")]

        class Fixed(BasePlugin):
            def lookup(self, token):
                return (self.source, token)

        print(Fixed("vnc.lan").lookup("5901"), websockify.__version__)
    """)
    result = run_python(tmp_path, "-c", program)
    assert result.returncode == 0, result.stderr
    import proxy

    assert result.stdout == f"('vnc.lan', '5901') {proxy.__version__}\n"
    assert result.stderr == ""
