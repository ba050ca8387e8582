"""``ProxyServer``: the listening socket and one handler thread per connection.

Holds only immutable ``Settings`` and server-wide state (live-connection count, upgrade
count, the shutdown signal); nothing per-connection lives here (websockify stored token
targets on its server object, STYLE.md §5 weakness 2).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import socketserver
import dataclasses
import sys
import time
from typing import Any

from proxy.transport import tls
from proxy.errors import StartupError
from proxy.serve.context import Connections, RequestContext
from proxy.serve.handler import ProxyRequestHandler
from proxy.serve.pool import HandlerPool, PoolClosed
from proxy.serve import reverseroute
from proxy.access.admission import Admission
from proxy.observe.metrics import Metrics
from proxy.observe.registry import SessionRegistry
from proxy.access.plugins import load_plugin
from proxy.transport.sockio import StopSignal
from proxy.settings import Settings

log = logging.getLogger(__name__)

#: Pause of the accept loop when the process is out of file descriptors.
ACCEPT_BACKOFF = 0.1  # seconds


def resolve_listen(host: str, port: int, prefer_ipv6: bool = False) -> tuple[int, tuple[Any, ...]]:
    """Pick the address to bind as websockify does: IPv4 first unless ``-6`` (spec §7.7).

    Raises:
        StartupError: the host does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"Opening socket failed: {exc}") from exc
    infos.sort(key=lambda info: info[0] == socket.AF_INET6, reverse=prefer_ipv6)
    family, _type, _proto, _name, address = infos[0]
    return family, address


def _plugin(name: str | None, kind: str, source: str | None) -> Any:
    return load_plugin(name, kind, source) if name else None


class ProxyServer(socketserver.ThreadingTCPServer):
    """A thread per connection, from a pool (``proxy.serve.pool``); the handler upgrades
    and relays (see ``proxy.serve.handler``).

    Embedding: ``server = ProxyServer(settings)`` binds at once; run
    ``server.serve_forever()`` in one thread, then ``server.shutdown()`` and
    ``server.server_close()`` from another (see README.rst, "Embedding").
    """

    block_on_close = False  # server_close() must not wait for open connections
    allow_reuse_address = True  # websockify sets SO_REUSEADDR (spec §6)
    request_queue_size = 128  # listen() backlog; websockify uses 100, socketserver 5

    def __init__(
        self,
        settings: Settings,
        handler_class: type[ProxyRequestHandler] = ProxyRequestHandler,
        bind_and_activate: bool = True,
    ) -> None:
        self.settings = settings
        self._handler_class = handler_class
        # TLS contexts are built once, before binding, so a bad certificate is a startup
        # error (exit 1), never a failure in a connection thread. SIGHUP: server_tls.reload().
        self.server_tls = tls.ServerTLS(settings)
        self.target_context = tls.build_target_context(settings)
        # Plugins are built once and shared by every connection thread (spec §8.1, §9.1).
        self.token_plugin = _plugin(settings.token_plugin, "token", settings.token_source)
        self.auth_plugin = _plugin(settings.auth_plugin, "auth", settings.auth_source)
        self.stop_signal = StopSignal()
        #: Counters for --metrics-path/--stats-interval (proxy.observe.metrics); thread-safe. With
        #: --workers in shared memory mapped here, before the fork (issue #16).
        self.metrics = Metrics(settings.workers)
        #: --max-connections and --max-connections-per-ip (handlers take a ticket).
        self.admission = Admission(settings)
        self.connections = Connections()
        #: The connection threads, started on demand and parked between connections (#19).
        self.pool = HandlerPool(self.process_request_thread)
        #: --reverse-listen (issue #20 §1): bound now, so a busy port is a startup error.
        self.repeater = reverseroute.Repeater(settings) if settings.reverse_listen else None
        #: What every handler gets instead of this server (#17 §2).
        self.context = RequestContext(
            settings, self.token_plugin, self.auth_plugin, self.server_tls,
            self.target_context, self.admission, self.metrics, self.stop_signal,
            self.connections, sessions=SessionRegistry() if settings.admin_path else None,
            parking=self.repeater.lot if self.repeater else None)
        self._last_backoff_log = 0.0
        address: Any
        if settings.unix_listen:
            self.address_family, address = socket.AF_UNIX, settings.unix_listen
        elif settings.inetd or settings.listen_fd is not None:
            address = ("", 0)
        else:
            self.address_family, address = resolve_listen(
                settings.listen_host, settings.listen_port, settings.prefer_ipv6)
        inherit = (settings.inetd or settings.listen_fd is not None) and bind_and_activate
        try:
            super().__init__(address, handler_class, bind_and_activate and not inherit)
        except BaseException:
            self.stop_signal.close()
            if self.repeater is not None:
                self.repeater.close()
            raise
        if inherit:
            self._inherit_listener(0 if settings.inetd else settings.listen_fd or 0)

    def _inherit_listener(self, fd: int) -> None:
        """``--inetd`` (spec §7.8), ``--listen-fd``/systemd: serve the listening socket ``fd``."""
        self.socket.close()
        self.socket = socket.socket(fileno=fd)
        self.socket.set_inheritable(False)  # a wrapped command must not get it
        self.address_family = self.socket.family
        self.server_address = self.socket.getsockname()

    def server_bind(self) -> None:
        if self.address_family == socket.AF_UNIX:
            self._bind_unix()
            return
        # Accepted sockets inherit SO_KEEPALIVE from the listener, as in websockify (§6).
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        super().server_bind()

    def _bind_unix(self) -> None:
        """Replace any file at the path; the socket gets exactly the requested mode (§7.8)."""
        path = str(self.server_address)
        if os.path.exists(path):
            os.unlink(path)
        old_umask = os.umask(0o777)  # no window in which the socket is more open than asked
        try:
            self.socket.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, self.settings.unix_listen_mode)

    def close_listener(self) -> None:
        """Stop accepting; live connections go on. Removes a ``--unix-listen`` file."""
        if self.socket.fileno() < 0:
            return
        log.debug("Closing socket listening at %s", self.settings.listen_display)  # spec §3.3
        super().server_close()
        # websockify leaves the socket file behind (§13.20). Workers leave it to the parent.
        if (self.address_family == socket.AF_UNIX and self.settings.unix_listen
                and self.owns_listener):
            try:
                os.unlink(self.settings.unix_listen)
            except FileNotFoundError:
                pass

    #: Whether closing the listener removes its ``--unix-listen`` file (not in workers).
    owns_listener = True
    #: ``--workers``: this worker's index (from 0); None in a single process.
    worker_index: int | None = None

    def share_listener(self, accept_wait: float) -> None:
        """Before forking ``--workers``: every worker polls the one listening socket.

        A worker that loses the race for a connection must not block in accept() until
        the next one (its timeouts would stop ticking), so the listener gets a timeout:
        accept() then waits at most ``accept_wait`` and raises ``TimeoutError``, an
        OSError socketserver ignores. Not non-blocking: socketserver polls with the
        socket's timeout when it has one, and 0 would spin.
        """
        self.socket.settimeout(accept_wait)

    def after_fork(self, index: int, count: int) -> None:
        """In worker ``index`` (from 0) of ``count`` (``proxy.process.workers``).

        Its own shutdown signal (the inherited socketpair is shared with every worker) and
        session numbers ``index + 1``, ``index + 1 + count``, … so log ids and ``--record``
        file names stay unique across workers.
        """
        self.owns_listener = False
        self.worker_index = index
        self.metrics.attach(index)  # the group's counters (proxy.observe.metrics, issue #16)
        self.stop_signal.close()
        self.stop_signal = StopSignal()
        self.context = dataclasses.replace(self.context, stop_signal=self.stop_signal,
                                           worker_index=index)
        self.connections.number_from(index + 1, count)
        self.pool = HandlerPool(self.process_request_thread)  # the parent's threads are not here

    def stop_sessions(self) -> None:
        """Ask every relaying connection to close with 1001 (they exit within ~1 s)."""
        self.stop_signal.set()

    def server_close(self) -> None:
        """Close the listener and the shutdown signal; call once serving has stopped.

        Parked handler threads exit; busy ones finish their connection first.
        """
        self.close_listener()
        self.stop_signal.close()
        self.pool.close()
        if self.repeater is not None:
            self.repeater.close()

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        return int(self.server_address[1])

    # -- connection accounting -----------------------------------------------------

    @property
    def live_connections(self) -> int:
        return self.connections.live

    def idle_for(self) -> float:
        """Seconds since the last connection ended (0 while any is live)."""
        return self.connections.idle_for()

    def next_session_id(self) -> int:
        """The next connection's number (``Connections.next_session_id``)."""
        return self.connections.next_session_id()

    @property
    def upgrades(self) -> int:
        """Connections that reached the 101 (for ``--run-once``)."""
        return self.connections.upgrades

    @property
    def last_upgraded(self) -> str:
        return self.connections.last_upgraded

    @property
    def draining(self) -> bool:
        """Set by the runner on SIGTERM with ``--drain-timeout``: new sessions get 503."""
        return self.connections.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.connections.draining = value

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.begin(self.admission.hard_limit):
            # Far over --max-connections: not even a thread to answer 503 (admission.py).
            self.shutdown_request(request)
            return
        if self.settings.run_once:
            # websockify handles --run-once connections in its own process, one at a time.
            self.process_request_thread(request, client_address)
            return
        self.dispatch(request, client_address)

    def dispatch(self, request: Any, client_address: Any) -> None:
        """Hand a counted connection to a handler thread (the one place that does).

        A parked pool thread takes it, or a new one when all are busy (``HandlerPool``,
        issue #19: no Thread.start() wait per connection). Taken by whichever side handles
        it: a pool thread, or this one when none took it yet. A SIGTERM (_Terminate) can
        interrupt the hand-off after a thread took the request.
        """
        job = (request, client_address)
        try:
            self.pool.submit(job)
        except PoolClosed:
            self._connection_done()
            raise
        except BaseException as exc:
            if self.pool.withdraw(job):
                self._connection_done()  # no thread will handle it (e.g. the thread limit)
                raise
            # The thread has it: socketserver would close the request under it if this
            # propagated (its client then saw a bare EOF, 1006, instead of our 1001), so
            # the stop goes on once socketserver is done with this connection: at the end
            # of handle_request() or in serve_forever()'s service_actions() (#17 §2).
            self._interrupted = exc

    def handle_request(self) -> None:
        """socketserver's, then the stop that interrupted a ``dispatch`` (see there).

        The accept loop (``proxy.process.runner``) calls this once per connection, and
        socketserver's builds and registers a new selector each time; one poll object
        kept for the listener does the same wait without that work (issue #19).
        """
        try:
            self.start_repeater()
            if self.socket.fileno() < 0:
                super().handle_request()  # closed: socketserver's error, as before
            elif self._wait_for_request():
                self._accept_one()
            else:
                self.handle_timeout()
        finally:
            self._raise_interrupted()

    def _wait_for_request(self) -> bool:
        """Wait for the listener to be readable within socketserver's timeout rules."""
        timeout = self.socket.gettimeout()  # --workers: the shared listener's accept wait
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        fd = self.socket.fileno()
        if self._poll_fd != fd:  # first use, or a new listener (inherited, rebound)
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN)
            self._poll_fd = fd
        # poll() retries on EINTR with the time left (PEP 475); a signal handler's
        # exception (SIGTERM's) propagates from here as from socketserver's select().
        return bool(self._poll.poll(None if timeout is None else timeout * 1000))

    def _accept_one(self) -> None:
        """socketserver's handling of one readable listener, hook for hook."""
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        if not self.verify_request(request, client_address):
            self.shutdown_request(request)
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
        except BaseException:
            self.shutdown_request(request)
            raise

    _poll_fd = -1
    _poll: select.poll

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.start_repeater()
        super().serve_forever(poll_interval)

    def start_repeater(self) -> None:
        """``--reverse-listen``: accept servers from now on; its threads start here, once
        serving, as they would not survive a ``--daemon`` fork (issue #20 §1)."""
        if self.repeater is not None:
            self.repeater.start()

    def service_actions(self) -> None:
        """serve_forever()'s hook after each request: the same deferred stop."""
        super().service_actions()
        self._raise_interrupted()

    def _raise_interrupted(self) -> None:
        interrupted, self._interrupted = self._interrupted, None
        if interrupted is not None:
            raise interrupted

    _interrupted: BaseException | None = None  # see dispatch

    def finish_request(self, request: Any, client_address: Any) -> None:
        """socketserver's, handing the handler the context instead of this server (#17 §2)."""
        self._handler_class(request, client_address, self, self.context)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_done()

    def _connection_done(self) -> None:
        self.connections.end()

    # -- hooks -------------------------------------------------------------------------

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return self.socket.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._back_off(exc)
            raise

    def _back_off(self, exc: OSError) -> None:
        """Out of file descriptors: the listener stays readable, so pause instead of spinning."""
        now = time.monotonic()
        if now - self._last_backoff_log >= 1.0:
            self._last_backoff_log = now
            log.warning("accept failed: %s; pausing new connections", exc.strerror)
        time.sleep(ACCEPT_BACKOFF)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The one catch-all per thread: websockify's line, the traceback only with -v."""
        exc = sys.exc_info()[1]
        log.info("handler exception: %s", exc)
        log.debug("exception", exc_info=True)
