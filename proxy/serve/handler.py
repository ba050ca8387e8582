"""One connection: parse HTTP with ``http.server``, upgrade, connect the target, relay.

Everything per-connection lives on the handler instance, never on the server (§8.1).
Whether an upgrade is accepted is ``proxy.serve.decision`` (no I/O); ``do_GET`` is the
I/O around it. The one mapping from a ``RequestError`` to an HTTP answer is ``_reject``;
the one catch-all is ``ProxyServer.handle_error``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from socketserver import BaseServer
from typing import Any

from proxy.access import resolve
from proxy.access.admission import Ticket
from proxy.observe import probes, sessionlog
from proxy.protocol import forwarded, handshake, proxyproto
from proxy.serve import admin, decision, reverseroute, web
from proxy.serve.context import RequestContext
from proxy.transport import tls
from proxy.errors import (HandshakeError, RequestError, RequestHeadTooLarge, RequestTimeout,
                          TargetError, TokenError)
from proxy.protocol.closes import (CLIENT_STALLED, INTERNAL_ERROR, LIMIT_REASONS,
                                   RECORDING_FAILED, TARGET_CLOSED, TARGET_STALLED, CloseInfo)
from proxy.protocol.stream import ClientStream
from proxy.transport.httpio import RequestReader, SocketWriter
from proxy.transport.closing import close_session
from proxy.transport.relay import Relay
from proxy.transport.sockio import shut_and_close
from proxy.observe.requestlog import RequestLog, log
from proxy.settings import DEFAULT_CERT, Target
from proxy.transport.targets import dial, tune_tcp
from proxy.observe.traffic import session_tap

#: ``--stall-timeout`` closes, as ``connections_failed_total`` reasons (issue #15).
STALL_FAILURES = {TARGET_STALLED: "target_stalled", CLIENT_STALLED: "client_stalled"}


class ProxyRequestHandler(RequestLog, BaseHTTPRequestHandler):
    """http.server handler that upgrades WebSocket requests and relays them."""

    rfile: RequestReader  # type: ignore[assignment]
    wfile: SocketWriter  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"
    # With sys_version this gives "Server: WebSockify Python/3.x.y", as websockify (§4.1).
    server_version = "WebSockify"
    #: This connection's place in the connection limits (``proxy.access.admission``);
    #: released in finish().
    ticket: Ticket

    def __init__(self, request: Any, client_address: Any, server: BaseServer,
                 context: RequestContext) -> None:
        #: All this handler reads of its server (#17 §2); it never touches ``server``.
        self.context = context
        self.settings = context.settings
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        #: What this connection did, for --log-format json and the metrics (finish()).
        self.session = sessionlog.start(self.client_address, self.context.metrics)
        tune_tcp(self.request)
        self.session_id = self.context.connections.next_session_id()
        self.session.client = self.address_string()
        # websockify's parent logs "<client>: new handler Process" at fork, without the
        # request prefix (spec §3.3); we start a thread instead (docs/logging.rst).
        log.debug("%s: new handler Thread", self.address_string())
        # ws:// and wss:// on one port; may replace self.request with the SSLSocket (§4.1).
        self.refused = not self._start_tls()
        self.connection = self.request
        self.rfile = RequestReader(self.request)
        self.wfile = SocketWriter(self.request, self.settings.request_timeout)
        # --max-connections[-per-ip]: counted from here until finish(); over a limit the
        # request is still read, then answered 503 (proxy.access.admission).
        # Behind a --trusted-proxy the per-address count waits for the client it names.
        self.ticket = Ticket()  # a refused client is never counted
        if not self.refused:
            trusted = forwarded.trusted_peer(self.client_address, self.settings.trusted_proxies)
            self.ticket = self.context.admission.admit(None if trusted else self.address_string())

    def _start_tls(self) -> bool:
        """Sniff the first byte and wrap a TLS client (spec §4.1); False = close now.

        The sniff waits up to the first-byte timeout; the TLS handshake is then bounded
        as a whole by the request timeout (websockify has no bound on it).
        """
        self.secure = False
        #: The verified client certificate's CN, for auth plugins (spec §9.1).
        self.client_cn: str | None = None
        kind = tls.sniff(self.request, self.settings.first_byte_timeout)
        client = self.address_string()
        if kind is tls.Sniff.NOTHING:
            self.session.silent = True  # a port probe: no JSON record either (issue #16)
            return False  # websockify closes a silent client after 3 s, logging nothing
        if kind is tls.Sniff.PLAIN:
            if self.settings.ssl_only:
                log.info("%s: non-SSL connection received but disallowed", client)
                return False
            return True
        context = self.context.server_tls.context  # read once: a SIGHUP may swap it
        if context is None:
            log.info("%s: SSL connection but '%s' not found", client,
                     self.settings.cert or DEFAULT_CERT)
            return False
        try:
            self.request = tls.accept(self.request, context, self.settings.request_timeout)
        except ssl.SSLEOFError as exc:
            log.info("%s: %s", client, exc)  # websockify's line for an SSL EOF (§4.1)
            return False
        self.secure = self.session.tls = True
        self.client_cn = tls.peer_common_name(self.request)
        return True

    def handle(self) -> None:
        if not self.refused:
            super().handle()

    def finish(self) -> None:
        """The accepted socket is shut down and closed by ``ProxyServer.shutdown_request``.

        An SSLSocket wrapped around it is ours to close: the wrap detached the original
        object, so closing only that one leaks the descriptor (notes/libraries.md §4.1).
        """
        self.ticket.release()
        sessionlog.finish(self.session, self.context.metrics, self.settings)
        if isinstance(self.request, ssl.SSLSocket):
            shut_and_close(self.request)

    def handle_one_request(self) -> None:
        # websockify waits 3 s for the first byte, then closes silently (spec §4.1).
        if not self.rfile.wait_first_byte(self.settings.first_byte_timeout):
            self.close_connection = True
            return
        self.rfile.start_request(self.settings.request_timeout, self.settings.max_request_head)
        # send_error needs these even when the request line never arrived.
        self.command, self.requestline, self.request_version = "", "", "HTTP/1.1"
        self.path = ""
        try:
            super().handle_one_request()
        except (RequestTimeout, RequestHeadTooLarge) as exc:
            self.close_connection = True
            self._reject(exc)  # 408, 431

    def parse_request(self) -> bool:
        parsed = False
        try:
            parsed = super().parse_request()
            return parsed
        finally:
            # What was asked, for the session record, also when it is refused (#17 §2).
            self.session.method, self.session.path = self.command or None, self.path or None
            if parsed:
                self.session.forwarded_for = self.headers.get("X-Forwarded-For")
                self.session.websocket = handshake.is_upgrade(self.headers)

    def do_GET(self) -> None:
        if self.settings.trusted_proxies and isinstance(self.client_address, tuple):
            # Behind a trusted balancer the client is the one it names (--trusted-proxy).
            self.forwarded_client = forwarded.client_address(
                self.client_address[:2], self.headers, self.settings.trusted_proxies)
            self.session.client = self.address_string()
        # --max-connections-per-ip counts the client the trusted proxy named.
        self.ticket.name(self.address_string())
        if not handshake.is_upgrade(self.headers):
            self._serve_web(head=False)
            return
        self.close_connection = True
        accepted = self._decide()
        if isinstance(accepted, HandshakeError):
            self._reject(accepted)
            return
        early, self.held = None, b""  # held: what a parked server sent (issue #20 §1)
        if self.settings.connect_before_upgrade or accepted.target.repeater_id:
            # --connect-before-upgrade: a target failure is a 502/504 instead of a 101+1011.
            try:
                early = self._connect(accepted.target)
            except TargetError as exc:
                self.log_message("Failed to connect to %s: %s", accepted.target.display, exc)
                self._reject(exc)
                return
        try:
            self.wfile.write(accepted.response)
        except OSError:
            if early is not None:
                shut_and_close(early)
            raise
        self._log_upgrade()
        self.session.subprotocol = accepted.upgrade.subprotocol
        s = self.settings
        # Held-back binary pieces count against the same bound as the relay's buffers.
        compressed = accepted.deflate is not None and accepted.deflate.enabled()
        stream = ClientStream(accepted.ws, accepted.upgrade.mode, s.text_frames,
                              s.max_message_size, s.high_water, s.reply_frames, compressed)
        self._proxy(stream, accepted.target, early)

    def _decide(self) -> decision.Accept | HandshakeError:
        """The request's facts, recorded for the session log, then ``decision.decide``."""
        plugin = self.context.token_plugin
        token = None if plugin is None and not self.settings.reverse_listen \
            else resolve.request_token(self.settings, self.path, self.headers)
        self.session.token = token  # for the session record, also when refused
        request = decision.Request(self.path, self.headers, token, self.client_cn,
                                   self.ticket.refusal, self.context.connections.draining,
                                   self._standard_headers())
        return decision.decide(self.settings, plugin, self.context.auth_plugin, request)

    def _log_upgrade(self) -> None:
        """The 101 is out: websockify's per-connection lines (spec §3.3)."""
        self.context.connections.note_upgrade(self.address_string())
        self.context.metrics.session_started()
        self.log_request(HTTPStatus.SWITCHING_PROTOCOLS)
        client = self.address_string()
        if self.secure:
            self.log_message("%s: SSL/TLS (wss://) WebSocket connection", client)
        else:
            self.log_message("%s: Plain non-SSL (ws://) WebSocket connection", client)
        if self.path != "/":
            self.log_message("%s: Path: '%s'", client, self.path)

    def do_HEAD(self) -> None:
        self._serve_web(head=True)

    def _serve_web(self, head: bool) -> None:
        """A plain GET/HEAD: ``--web`` files, ``--diagnostics`` pages (``proxy.serve.web``)."""
        rest = admin.route(self.settings, self.path)
        if rest is not None:  # its own access rules, and open at the connection limit, so
            # an operator can end sessions then; --web-auth does not open it (issue #21)
            admin.serve(self, self.context, rest, head)
            return
        if self.ticket.refusal is not None:
            self.close_connection = True
            self._reject(self.ticket.refusal)
            return
        probe = probes.route(self.settings, self.path)  # ours; before --web files
        if probe == probes.HEALTH:
            self._serve_probe(probe, head)  # no --web-auth: balancers probe without it
            return
        if not web.enabled(self.settings) and probe is None:
            # No --web: websockify answers every plain GET and HEAD with 405 (spec §4.2).
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)
            return
        if self.settings.web_auth and self.context.auth_plugin is not None:
            try:
                # --web-auth: the auth plugin first, told the configured target (§4.5).
                resolve.strip_client_cert_headers(self.headers, self.client_cn)
                resolve.authenticate(self.context.auth_plugin, self.headers, self.settings.target)
            except HandshakeError as exc:
                self._reject(exc)
                return
        if probe is not None:
            self._serve_probe(probe, head)
            return
        web.respond(self, self.settings, head)

    def _serve_probe(self, kind: str, head: bool) -> None:
        """``--health-path``/``--metrics-path`` (``proxy.observe.probes``)."""
        context = self.context
        admission = context.admission
        grouped = context.worker_index is not None and not admission.shared
        snapshot = context.metrics.snapshot(context.connections.live) \
            if kind == probes.METRICS or grouped else None
        probes.respond(self, kind, head, draining=context.connections.draining,
                       live=probes.fullest(admission.live, snapshot if grouped else None),
                       limit=admission.max_connections, snapshot=snapshot,
                       parking=context.parking)

    def do_POST(self) -> None:
        """Only ``--admin-path`` takes a POST (issue #21); elsewhere http.server's 501 as
        for any method without a do_X, which is 0.13.0's answer (spec §4.2, §14)."""
        if admin.route(self.settings, self.path) is None:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
            return
        self.ticket.name(self.address_string())
        self._serve_web(head=False)

    # Other methods have no do_X: http.server answers "501 Unsupported method ('PUT')".

    def _standard_headers(self) -> list[tuple[str, str]]:
        return [("Server", self.version_string()), ("Date", self.date_time_string()),
                *self.settings.response_headers]

    def _reject(self, exc: RequestError) -> None:
        """The one place an error becomes an HTTP answer: the status, reason and headers
        it carries (#17 §2)."""
        self.session.reject(exc)
        if isinstance(exc, TokenError):
            # websockify logs these without the request prefix (spec §3.3).
            log.info("%s: %s", self.address_string(), exc.log_line)
        elif exc.log_line:
            log.info("%s", exc.log_line)
        if isinstance(exc, TokenError) and self.settings.silent_token_errors:
            return  # websockify's answer: close the TCP connection, no response (§8.1)
        self.send_error(exc.status, exc.reason, headers=exc.headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None,
                   headers: Sequence[tuple[str, str]] = ()) -> None:
        """http.server's error page, plus headers an auth plugin asked for (spec §9.1)."""
        self._extra_headers = headers
        try:
            super().send_error(code, message, explain)
        finally:
            self._extra_headers = ()

    def end_headers(self) -> None:
        for name, value in getattr(self, "_extra_headers", ()):
            self.send_header(name, value)
        for name, value in self.settings.response_headers:  # --response-header
            self.send_header(name, value)
        super().end_headers()

    def _connect(self, target: Target, stream: ClientStream | None = None) -> socket.socket:
        """Open the target with websockify's log lines (see ``targets.dial``)."""
        if target.repeater_id is not None:  # a parked server (issue #20 §1)
            sock, self.held = reverseroute.pair(self.context, target, self.request, stream,
                                                self.rfile)
            return sock
        preamble = self._proxy_header() if self.settings.target_proxy_protocol else b""
        return dial(target, self.settings, self.context.target_context, preamble,
                    self.log_message)

    def _proxy_header(self) -> bytes:
        """The PROXY v1 header for ``--target-proxy-protocol`` (sent before any TLS)."""
        peer = self.forwarded_client or self.client_address
        source = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and peer else None
        try:
            local = self.request.getsockname()
        except OSError:
            local = None
        destination = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None
        return proxyproto.v1_header(source, destination)

    def _proxy(self, stream: ClientStream, target: Target,
               sock: socket.socket | None = None) -> None:
        """Connect the target after the 101 (spec §4.3 step 5) and relay until closed."""
        s = self.settings
        # --traffic/--traffic-dump/--record; None when all are off. websockify opens the
        # recording before connecting (spec §3.3 line order) and ends it with 'EOF'];
        # even when the connect fails (§7.4).
        self.session.target = target.display
        try:
            tap = session_tap(s, self.session_id, self.address_string(), self.log_message)
        except OSError as exc:
            # websockify's session dies with this line and no Close (§7.4); ours also
            # closes 1011, as for a connect failure (the path stays out of the reason).
            log.info("handler exception: %s", exc)
            self.session.failure, self.session.close_code = "record", INTERNAL_ERROR
            close_session(self.request, stream, INTERNAL_ERROR, RECORDING_FAILED, s.limits)
            if sock is not None:
                shut_and_close(sock)
            return
        try:
            try:
                sock = sock or self._connect(target, stream)
            except TargetError as exc:
                # websockify prints "None:None" for a Unix target here; we print its path.
                self.log_message("Failed to connect to %s: %s", target.display, exc)
                self.session.failure, self.session.close_code = "target", INTERNAL_ERROR
                close_session(self.request, stream, INTERNAL_ERROR, exc.reason, s.limits)
                return
            registry = self.context.sessions  # --admin-path (issue #21)
            live = None if registry is None else registry.watch(self.session_id, self.session, tap)
            relay = Relay(self.request, sock, stream, s.limits, self.context.stop_signal,
                          tap=tap if live is None else live.tap,
                          close_request=None if live is None else live.close_request)
            self.session.relay = relay
            self.context.metrics.relay_started(relay)
            try:
                if registry is not None and live is not None:
                    registry.start(live, relay)
                info = relay.run(self.rfile.take_buffered(), self.held)
            finally:
                if registry is not None and live is not None:
                    registry.end(live)
                shut_and_close(sock)
        finally:
            if tap is not None:
                tap.close()
        self._log_close(info, target, relay.reaped)

    def _log_close(self, info: CloseInfo, target: Target, reaped: str | None) -> None:
        self.session.close_code, self.session.close_reason = info.code, info.reason
        self.session.closed_by_client = info.by_client
        if info.reason in STALL_FAILURES:
            self.session.failure = STALL_FAILURES[info.reason]  # counted in the metrics
        if reaped is not None:
            # Ours (issue #15): a session websockify would have kept for ever.
            self.log_message("%s: Ended: %s", target.display, reaped)
        if info.by_client:
            self.log_verbose("%s: Client closed connection", target.display)
        elif info.reason == TARGET_CLOSED:
            self.log_verbose("%s: Target closed connection", target.display)
        elif info.reason in LIMIT_REASONS:
            # Ours: a limit ended the session (docs/reliability.rst); not websockify's line.
            self.log_message("%s: Closing: %d %s", target.display, info.code, info.reason)
        self.log_verbose("%s: Closed target", target.display)
