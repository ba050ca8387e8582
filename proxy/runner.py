"""Run the server as the ``websockify`` process: banner, signals, timeouts, exit status.

Process-level behaviour of spec §7.1 and §10: ``--run-once``, ``--timeout``,
``--idle-timeout``, SIGTERM/SIGINT. Installs signal handlers, so only the command (not
an embedding program) calls ``serve``.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from proxy import logsetup
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
    if settings.web and settings.file_only:
        log.info("  - Web server (no directory listings). Web root: %s", settings.web)
    elif settings.web:
        log.info("  - Web server. Web root: %s", settings.web)
    if settings.diagnostics_path:
        log.info("  - Diagnostics page at %s", settings.diagnostics_path)  # ours
    # The SSL lines depend only on whether the cert path exists, as websockify's (§3.2).
    if settings.cert is not None and os.path.exists(settings.cert):
        log.info("  - SSL/TLS support")
        if settings.ssl_only:
            log.info("  - Deny non-SSL/TLS connections")
    else:
        log.info("  - No SSL/TLS support (no cert file)")
    if settings.record:
        log.info("  - Recording to '%s.*'", settings.record)


def _sighup_handler(server: ProxyServer) -> Callable[[int, FrameType | None], None]:
    """SIGHUP: reopen the log files and reload the certificate, each in a short thread.

    Not in the signal handler itself: it interrupts the main thread anywhere, possibly
    inside a logging call holding a handler's lock (see ``logsetup.on_sighup``).
    """
    def on_sighup(signum: int, frame: FrameType | None) -> None:
        if server.settings.log_file:
            logsetup.on_sighup(signum, frame)
        if server.server_tls.context is not None:
            threading.Thread(target=server.server_tls.reload, name="tls-reload",
                             daemon=True).start()
    return on_sighup


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
    if server.token_plugin is not None:
        destination = f"targets generated by {type(server.token_plugin).__name__}"
    else:
        destination = settings.target_display
    log.info("  - proxying from %s to %s%s", settings.listen_display, destination,
             " (using SSL)" if settings.ssl_target else "")
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
    if settings.log_file or server.server_tls.context is not None:
        # Reopen --log-file after logrotate renamed it and reload the TLS certificate
        # (websockify issue #374). websockify dies on SIGHUP (§10); without --log-file
        # and TLS we leave the default action, as it does.
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, _sighup_handler(server))
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
