"""Run the server as the ``websockify`` process: banner, signals, timeouts, exit status.

Process-level behaviour of spec §7.1 and §10: ``--run-once``, ``--timeout``,
``--idle-timeout``, SIGTERM/SIGINT. Installs signal handlers, so only the command (not
an embedding program) calls ``serve``.
"""

from __future__ import annotations

import logging
import resource
import signal
import time
from types import FrameType

from proxy.errors import StartupError
from proxy.server import ProxyServer
from proxy.settings import Settings

log = logging.getLogger(__name__)

#: How often the accept loop wakes to check timeouts and --run-once.
TICK = 0.2  # seconds
#: How long SIGTERM waits for sessions to exchange their 1001 Close frames.
SHUTDOWN_GRACE = 1.5  # seconds


class _Terminate(BaseException):
    """Raised by the SIGTERM/SIGINT handler in the main thread.

    A BaseException, like KeyboardInterrupt, so socketserver's per-request
    ``except Exception`` (``--run-once`` handles requests in the main thread) lets it by.
    """


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminate(signum)


def raise_fd_limit() -> None:
    """Raise the soft open-file limit to the hard one: 2 fds per proxied connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.debug("could not raise the open-file limit from %s to %s", soft, hard)


def log_banner(settings: Settings) -> None:
    """The startup banner lines printed before binding (spec §3.2)."""
    log.info("WebSocket server settings:")
    if settings.inetd:
        log.info("  - Listen for inetd connections")
    elif settings.unix_listen:
        log.info("  - Listen on unix socket %s", settings.unix_listen)
    else:
        log.info("  - Listen on %s", settings.listen_display)
    log.info("  - No SSL/TLS support (no cert file)")


def _exit_reason(server: ProxyServer, settings: Settings, started: float) -> str | None:
    """Why the accept loop should stop now (websockify's log lines, spec §3.3), or None."""
    if settings.run_once and server.upgrades:
        return f"{server.last_upgraded}: exiting due to --run-once"
    if settings.timeout and time.monotonic() - started >= settings.timeout:
        return f"listener exit due to --timeout {settings.timeout:g}"
    if settings.idle_timeout and server.idle_for() >= settings.idle_timeout:
        return f"listener exit due to --idle-timeout {settings.idle_timeout:g}"
    return None


def _accept_until_done(server: ProxyServer, settings: Settings) -> None:
    started = time.monotonic()
    server.timeout = TICK
    while True:
        server.handle_request()
        reason = _exit_reason(server, settings, started)
        if reason:
            log.info("%s", reason)
            return


def _wait_for_connections(server: ProxyServer, limit: float | None) -> None:
    """Wait until no connection is live, or ``limit`` seconds (None = no limit)."""
    deadline = None if limit is None else time.monotonic() + limit
    while server.live_connections and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.05)


def serve(settings: Settings) -> int:
    """Run until a signal, a timeout or ``--run-once`` ends it; return the exit status."""
    raise_fd_limit()
    log_banner(settings)
    try:
        server = ProxyServer(settings)
    except (OSError, StartupError) as exc:
        # websockify logs "Openening socket failed" and exits 0 (§2.5, §13.13): exit 1.
        log.error("%s", exc if isinstance(exc, StartupError) else f"Opening socket failed: {exc}")
        return 1
    log.info("  - proxying from %s to %s", settings.listen_display, settings.target_display)
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _accept_until_done(server, settings)
        # --timeout/--idle-timeout/--run-once: stop accepting, let live sessions finish
        # (websockify keeps the listener open meanwhile, §13.19).
        server.close_listener()
        _wait_for_connections(server, None)
    except _Terminate:
        log.info("In exit")
        server.close_listener()
        server.stop_sessions()
        _wait_for_connections(server, SHUTDOWN_GRACE)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
    return 0
