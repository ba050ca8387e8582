"""proxy.process.wrap: the wrapped command's environment, compiler and private port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from proxy.process import wrap


def test_child_env_strips_activation_and_chains_ld_preload() -> None:
    env = wrap.child_env({"LISTEN_FDS": "1", "LISTEN_PID": "9", "LD_PRELOAD": "/a.so",
                          "PATH": "/bin"}, "/c/rebind.so", 6080, 40000, 7, 99)
    assert env == {"LD_PRELOAD": "/c/rebind.so:/a.so", "PATH": "/bin",
                   "REBIND_OLD_PORT": "6080", "REBIND_NEW_PORT": "40000", "REBIND_FD": "7",
                   "REBIND_PARENT_PID": "99"}


def test_find_compiler(tmp_path: Path) -> None:
    assert wrap.find_compiler({"PATH": str(tmp_path)}) is None
    assert wrap.find_compiler({"PATH": str(tmp_path), "CC": "nonexistent-cc -O1"}) is None
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\n")
    cc.chmod(0o755)
    assert wrap.find_compiler({"PATH": str(tmp_path)}) == [str(cc)]
    assert wrap.find_compiler({"PATH": str(tmp_path), "CC": "cc -m64"}) == ["cc", "-m64"]


def test_private_port_refuses_until_a_child_listens() -> None:
    private = wrap.PrivatePort()
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", private.port), timeout=1).close()
        child = private.socket_for_child()  # same port, while the reservation holds it
        try:
            assert child.getsockname() == ("127.0.0.1", private.port)
            child.listen()
            socket.create_connection(("127.0.0.1", private.port), timeout=1).close()
        finally:
            child.close()
    finally:
        private.close()
