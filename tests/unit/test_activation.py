"""proxy.process.activation: systemd socket activation's LISTEN_PID and LISTEN_FDS (issue 10)."""

from __future__ import annotations

import pytest

from proxy.process import activation


@pytest.mark.parametrize(("env", "fds"), [
    ({"LISTEN_PID": "42", "LISTEN_FDS": "2"}, [3, 4]),
    ({"LISTEN_PID": "41", "LISTEN_FDS": "2"}, []),
    ({"LISTEN_FDS": "1"}, []),
    ({"LISTEN_PID": "42", "LISTEN_FDS": "x"}, []),
    ({}, []),
])
def test_listen_fds(env: dict[str, str], fds: list[int]) -> None:
    assert activation.listen_fds(env, 42) == fds
