"""Run the server as the ``websockify`` process: banner, signals, timeouts, exit status.

Process-level behaviour of spec §7.1, §7.5, §7.9 and §10: ``--run-once``, ``--timeout``,
``--idle-timeout``, ``--daemon``, wrap mode, SIGTERM/SIGINT (with ``--drain-timeout``),
SIGHUP reloads, ``--stats-interval``. Installs signal handlers, so only the command (not
an embedding program) calls ``serve``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import signal
import time
from collections.abc import Callable, Mapping
from types import FrameType

from proxy.observe import logsetup, metrics, parkingmetrics
from proxy.process import daemon, sdnotify, startsignals, switchinterval, workers, wrap
from proxy.process.reload import hangup_ends_process, reload_parent, sighup_handler
from proxy.protocol import speedups
from proxy.errors import StartupError
from proxy.serve import admingroup
from proxy.serve.server import ProxyServer
from proxy.settings import Settings

log = logging.getLogger("proxy.runner")

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


def tune_interpreter() -> None:
    """The GIL switch interval for the threads alive now (``proxy.process.switchinterval``:
    9,000 idle connections made runnable at once stalled at short intervals, #19)."""
    switchinterval.adjust()


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
    if settings.workers > 1:
        log.info("  - %d worker processes", settings.workers)  # ours (proxy.process.workers)
    if settings.daemon:
        log.info("  - Backgrounding (daemon)")
    if settings.record:
        log.info("  - Recording to '%s.*'", settings.record)


def _exit_reason(server: ProxyServer, settings: Settings, started: float) -> str | None:
    """Why the accept loop should stop now (websockify's log lines, spec §3.3), or None."""
    if settings.run_once and server.upgrades:
        return f"{server.last_upgraded}: exiting due to --run-once"
    if settings.timeout and time.monotonic() - started >= settings.timeout:
        return f"listener exit due to --timeout {settings.timeout:g}"
    if settings.idle_timeout and server.idle_for() >= settings.idle_timeout:
        return f"listener exit due to --idle-timeout {settings.idle_timeout:g}"
    return None


def _accept_until_done(server: ProxyServer, settings: Settings,
                       tick: Callable[[], None] = lambda: None) -> None:
    """Serve until an exit reason; ``tick`` runs after each wake-up (may raise _Terminate)."""
    started = time.monotonic()
    server.timeout = TICK
    while True:
        server.handle_request()
        tick()
        reason = _exit_reason(server, settings, started)
        if reason:
            log.info("%s", reason)
            return


class _Ticker:
    """Work of the accept loop between requests: wrapped command, ``--stats-interval``,
    and with ``--workers`` publishing the live relays' bytes to the other workers."""

    def __init__(self, server: ProxyServer, wrapper: wrap.Wrapper | None) -> None:
        self.server = server
        self.wrapper = wrapper
        # --workers: the stats line shows the whole group (proxy.observe.metrics), so only the
        # first worker logs it; N lines of N different numbers were no view at all (#16).
        first = server.worker_index in (None, 0)
        self.interval = server.settings.stats_interval if first else 0.0
        self.next_stats = time.monotonic() + self.interval
        self.shared = server.worker_index is not None
        self.next_publish = 0.0

    def __call__(self) -> None:
        sdnotify.watchdog()  # from the accept loop: a hung loop stops the pings (#16)
        switchinterval.adjust()  # longer with more relay threads (#19)
        if self.shared and time.monotonic() >= self.next_publish:
            # At most once per TICK: the accept loop also wakes for every connection.
            self.next_publish = time.monotonic() + TICK
            self.server.metrics.publish()
        if self.interval and time.monotonic() >= self.next_stats:
            self.next_stats += self.interval
            line = metrics.stats_line(self.server.metrics.snapshot(self.server.live_connections))
            if self.server.repeater is not None:  # --reverse-listen (issue #20 §1)
                line += " " + parkingmetrics.stats_text(self.server.repeater.lot)
            log.info("%s", line)
        if self.wrapper is not None and self.wrapper.poll():
            raise _Terminate(0)  # --wrap-mode exit: websockify's "In exit" path (§3.3)


def _drain(server: ProxyServer, limit: float) -> None:
    """``--drain-timeout``: keep answering (new sessions and health get 503) until no
    connection is open or ``limit`` seconds passed; a second SIGTERM ends it at once."""
    server.draining = True
    # Every live connection counts, handshakes included (their 101 may be on its way);
    # idle keep-alive HTTP connections end within the first-byte timeout.
    log.info("Draining: waiting up to %gs for %d open connection(s)", limit,
             server.live_connections)
    deadline = time.monotonic() + limit
    try:
        while server.live_connections and time.monotonic() < deadline:
            server.handle_request()
    except _Terminate:
        log.info("Drain interrupted")


def _wait_for_connections(server: ProxyServer, limit: float | None) -> None:
    """Wait until no connection is live, or ``limit`` seconds (None = no limit)."""
    deadline = None if limit is None else time.monotonic() + limit
    while server.live_connections and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.05)


def _destination(server: ProxyServer) -> str:
    settings = server.settings
    if settings.wrap_cmd:
        return f"'{wrap.describe(settings.wrap_cmd)}' (port {settings.target_port})"
    if server.token_plugin is not None:
        return f"targets generated by {type(server.token_plugin).__name__}"
    if settings.reverse_listen and not (settings.target_host or settings.unix_target):
        return "servers parked by --reverse-listen"  # issue #20 §1
    return settings.target_display


def _public_port(server: ProxyServer) -> int:
    """The port the wrapped command binds (and the shim moves); 0 = none (Unix socket)."""
    address = server.server_address
    if server.settings.listen_port:
        return server.settings.listen_port
    return int(address[1]) if isinstance(address, tuple) and len(address) >= 2 else 0


def _prepare_wrap(settings: Settings, environ: Mapping[str, str],
                  ) -> tuple[Settings, str, wrap.PrivatePort]:
    """Build the shim and reserve the private port; the target becomes that port.

    Raises:
        StartupError: no compiler or the build failed (before the banner, as websockify's
            "rebind.so not found", spec §2.5).
    """
    shim = wrap.shim_path(environ)
    private = wrap.PrivatePort()
    return (dataclasses.replace(settings, target_host="127.0.0.1", target_port=private.port),
            shim, private)


def serve(settings: Settings, environ: Mapping[str, str] | None = None) -> int:
    """Run until a signal, a timeout or ``--run-once`` ends it; return the exit status.

    Args:
        environ: the environment (wrap mode builds its shim and the command's from it).
    """
    # Signals before the running server's handlers are in: noted, then replayed.
    held = [signal.SIGTERM, signal.SIGINT]
    if not hangup_ends_process(settings):
        held.append(signal.SIGHUP)
    startsignals.hold(held)
    try:
        return _start(settings, environ)
    finally:
        startsignals.release()


def _start(settings: Settings, environ: Mapping[str, str] | None) -> int:
    raise_fd_limit()
    tune_interpreter()
    speedups.install()  # silent: nothing may come before the banner (spec §3.2)
    environ = {} if environ is None else environ
    private: wrap.PrivatePort | None = None
    try:
        if settings.wrap_cmd:
            settings, shim, private = _prepare_wrap(settings, environ)
        log_banner(settings)
        server = ProxyServer(settings)
    except (OSError, StartupError) as exc:
        if private is not None:
            private.close()
        # websockify logs "Openening socket failed" and exits 0 (§2.5, §13.13): exit 1.
        log.error("%s", exc if isinstance(exc, StartupError) else f"Opening socket failed: {exc}")
        return 1
    if not _detach(server, settings):
        server.server_close()
        if private is not None:
            private.close()
        return 1
    log.info("  - proxying from %s to %s%s", settings.listen_display, _destination(server),
             " (using SSL)" if settings.ssl_target else "")
    sdnotify.notify("READY=1")  # listening (and backgrounded) now
    wrapper = None
    if private is not None:
        wrapper = wrap.Wrapper(settings.wrap_cmd, settings.wrap_mode, shim, _public_port(server),
                               private, environ)
    try:
        if settings.workers > 1:
            return _run_workers(server, settings)
        return _run(server, settings, wrapper)
    finally:
        if wrapper is not None:
            wrapper.stop()
        if settings.pid_file:
            daemon.remove_pid_file(settings.pid_file)


def _detach(server: ProxyServer, settings: Settings) -> bool:
    """``--daemon`` and ``--pid-file``; False (reported, one line) if the pid file failed."""
    if settings.daemon:
        # After binding, so the command returns with the port answering (spec §7.5), and
        # with the pid file written (#16 Operations 2).
        reverse = server.repeater.fds() if server.repeater else []  # --reverse-listen
        return daemon.daemonize([server.fileno(), *reverse, *logsetup.log_file_fds()],
                                settings.pid_file)
    if settings.pid_file:
        try:
            daemon.write_pid_file(settings.pid_file)
        except OSError as exc:
            log.error("%s", daemon.pid_file_error(settings.pid_file, exc))
            return False
    return True


def _run_workers(server: ProxyServer, settings: Settings) -> int:
    """``--workers``: the parent supervises, each worker runs ``_run`` (proxy.process.workers)."""
    # --admin-path: the workers' control sockets (proxy.serve.admingroup, issue #21).
    directory = admingroup.make_directory() if settings.admin_path else None

    def work(index: int) -> int:
        server.after_fork(index, settings.workers)
        if directory is not None:
            admingroup.join(server, directory, index, settings.workers)
        return _run(server, settings, None, stop_signals=(workers.WORKER_STOP,))

    server.share_listener(TICK)
    on_hup: Callable[[], None] | None = None
    if not hangup_ends_process(settings):
        # The workers reload everything themselves; the parent only reopens its log file.
        on_hup = reload_parent
    try:
        return workers.supervise(settings.workers, work,
                                 settings.drain_timeout + SHUTDOWN_GRACE, on_hup)
    finally:
        server.server_close()
        if directory is not None:
            admingroup.remove_directory(directory)


def _run(server: ProxyServer, settings: Settings, wrapper: wrap.Wrapper | None,
         stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> int:
    previous = {sig: signal.signal(sig, _terminate) for sig in stop_signals}
    if not hangup_ends_process(settings):
        # Reopen --log-file, reload the TLS certificate and the token files (websockify
        # issue #374) in every configuration: websockify dies on SIGHUP (§10), so the
        # contrib unit's `systemctl reload` killed a proxy with nothing to reload (#16).
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, sighup_handler(server))
    try:
        startsignals.replay()  # a stop in the start-up window raises _Terminate here
        if wrapper is not None:
            try:
                wrapper.start()
            except StartupError as exc:
                log.error("%s", exc)
                return 1
        _accept_until_done(server, settings, _Ticker(server, wrapper))
        # --timeout/--idle-timeout/--run-once: stop accepting, let live sessions finish
        # (websockify keeps the listener open meanwhile, §13.19).
        sdnotify.notify("STOPPING=1")
        server.close_listener()
        _wait_for_connections(server, None)
    except _Terminate:
        sdnotify.notify("STOPPING=1")
        log.info("In exit")
        if settings.drain_timeout > 0:
            _drain(server, settings.drain_timeout)
        for sig in stop_signals:  # closing already; another stop must not interrupt it
            signal.signal(sig, signal.SIG_IGN)
        server.close_listener()
        server.stop_sessions()
        _wait_for_connections(server, SHUTDOWN_GRACE)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
    # --wrap-mode exit: the command's status (websockify exits 0, §13.12).
    status = wrapper.exit_status if wrapper is not None else None
    return status or 0
