"""systemd socket activation: the ``LISTEN_FDS``/``LISTEN_PID`` protocol, without libsystemd.

sd_listen_fds(3): passed sockets start at fd 3 (``SD_LISTEN_FDS_START``); the variables
count only when ``LISTEN_PID`` is our pid (they may have been inherited by accident).
Pure: the caller (``cli``) passes the environment and the pid.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The first passed file descriptor (sd_listen_fds(3)).
LISTEN_FDS_START = 3


def listen_fds(env: Mapping[str, str], pid: int) -> list[int]:
    """The file descriptors systemd passed to process ``pid``; [] when none (or not ours)."""
    try:
        if int(env.get("LISTEN_PID", "")) != pid:
            return []
        count = int(env.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    return list(range(LISTEN_FDS_START, LISTEN_FDS_START + max(count, 0)))
