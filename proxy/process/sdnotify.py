"""systemd readiness: the ``sd_notify`` protocol over ``NOTIFY_SOCKET``, without libsystemd.

sd_notify(3): newline-separated ``VARIABLE=value`` lines in one datagram to the AF_UNIX
socket named by ``NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace). The
command sends ``READY=1`` once listening, ``RELOADING=1``/``READY=1`` around a SIGHUP reload,
``STOPPING=1`` when it starts to stop, and ``WATCHDOG=1`` every ``WATCHDOG_USEC``/2 from
its main loop (issue #16 Operations 2 §1).

Only the main process notifies (the unit's ``NotifyAccess=main``): ``install`` takes the
variables out of the environment, so workers and wrapped commands never see them, and
``notify`` does nothing in any process other than the one that installed it (a forked
worker, or the child of ``--daemon``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger("proxy.sdnotify")

#: The variables for *us* (sd_notify(3), sd_watchdog_enabled(3)); no child may inherit them.
VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


#: How long one notification may wait for room in the manager's queue.
SEND_TIMEOUT = 1.0  # seconds


class Notifier:
    """Sends notifications to one socket, from process ``pid`` only.

    Args:
        address: ``NOTIFY_SOCKET``'s value (``@`` at the start: abstract namespace).
        pid: the process allowed to notify.
        watchdog: seconds between ``WATCHDOG=1`` messages; 0 = no watchdog.
    """

    def __init__(self, address: str, pid: int, watchdog: float = 0.0) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.pid = pid
        self.watchdog_interval = watchdog
        self.next_watchdog = time.monotonic()

    def notify(self, message: str) -> None:
        """Send ``message``; never raises (a missing manager must not stop the proxy)."""
        if os.getpid() != self.pid:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Bounded: a manager that stops reading fills its queue, and a blocking
                # send would then hang start-up, reloads and the watchdog.
                sock.settimeout(SEND_TIMEOUT)
                sock.sendto(message.encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", message, exc)

    def watchdog(self) -> None:
        """``WATCHDOG=1`` if half the watchdog period passed since the last one."""
        if not self.watchdog_interval:
            return
        now = time.monotonic()
        if now >= self.next_watchdog:
            self.next_watchdog = now + self.watchdog_interval
            self.notify("WATCHDOG=1")


def from_environ(env: MutableMapping[str, str], pid: int) -> Notifier | None:
    """The notifier ``env`` asks for (None: not under systemd); removes ``VARIABLES``."""
    values = {name: env.pop(name, "") for name in VARIABLES}
    address = values["NOTIFY_SOCKET"]
    if not address or not (address.startswith("/") or address.startswith("@")):
        return None  # unset, or a vsock address (not supported)
    interval = 0.0
    try:
        usec = int(values["WATCHDOG_USEC"] or "0")
        watchdog_pid = int(values["WATCHDOG_PID"] or pid)
    except ValueError:
        usec, watchdog_pid = 0, pid
    if usec > 0 and watchdog_pid == pid:
        interval = usec / 2 / 1e6  # sd_watchdog_enabled(3): notify at half the period
    return Notifier(address, pid, interval)


#: The command's notifier (``install``); None when systemd did not ask for one.
_current: Notifier | None = None


def install(env: MutableMapping[str, str]) -> None:
    """Take the notify variables out of ``env`` (``os.environ``); later calls notify."""
    global _current
    _current = from_environ(env, os.getpid())


def notify(message: str) -> None:
    """Send ``message`` if ``install`` found a socket and this is the process it ran in."""
    if _current is not None:
        _current.notify(message)


def watchdog() -> None:
    """Call from the main loop: ``WATCHDOG=1`` when due (a no-op without WATCHDOG_USEC)."""
    if _current is not None:
        _current.watchdog()


def reloading() -> None:
    """``RELOADING=1`` with the clock systemd 253+ wants for ``Type=notify-reload``."""
    notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
