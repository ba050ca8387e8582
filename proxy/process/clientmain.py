"""``websockify-client``: TCP connections in, one WebSocket out for each (issue #20 §2).

``websockify-client [options] [LISTEN_HOST:]LISTEN_PORT URL``: every connection accepted
on the listen address opens a WebSocket to ``URL`` and the two are relayed by the
server's relay core (``proxy.transport.relay``, same buffers and backpressure), with
the WebSocket as the relay's "client" side and the TCP connection as its "target".
Messages and ``--traffic`` markers are the server's (``proxy.observe.logsetup``,
``proxy.observe.traffic``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.errors import TargetError
from proxy.observe import logsetup
from proxy.observe.traffic import CLIENT_LEGEND, SessionTap, TrafficMarkers
from proxy.protocol.clienthandshake import (DEFAULT_SUBPROTOCOL, Endpoint, HandshakeRefused,
                                            parse_url, request)
from proxy.protocol.clientrole import ServerPeerStream
from proxy.protocol.closes import NORMAL
from proxy.process.reload import NOTHING_TO_RELOAD, RELOADED, in_thread
from proxy.settings import LogSettings
from proxy.transport.relay import Relay
from proxy.transport.stdio import StdioPump
from proxy.transport.targets import tune_tcp
from proxy.transport.wsdial import client_context, open_websocket

__all__ = ["main"]

log = logging.getLogger("websockify.client")

#: Exit status of a failed connection in ``--once`` and ``-`` mode (usage errors: 2).
FAILED = 1
#: Pause after a failed accept() (out of file descriptors) before the next.
ACCEPT_BACKOFF = 0.1  # seconds
#: ``--log-file`` that cannot be opened: this line on stderr, exit 1 (as the server, #15).
LOG_FILE_ERROR = "websockify-client: cannot open log file {path}: {cause}\n"
#: ``--log-format``: ``both`` of the server is about its per-session JSON records, which
#: the client does not write.
LOG_FORMATS = ("classic", "json")
#: ``-`` relays standard output: markers there would corrupt the data.
TRAFFIC_WITH_STDIO = "--traffic writes to standard output, which - uses for data"


@dataclass(frozen=True)
class ClientConfig:
    """What every connection needs: where to, with which headers and TLS."""

    endpoint: Endpoint
    url: str
    headers: list[tuple[str, str]]
    subprotocols: list[str]
    context: ssl.SSLContext | None
    timeout: float
    #: ``--traffic``: the server's markers on stdout, one line per session (spec §3.4).
    traffic: bool = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="websockify-client",
        description="Relay TCP connections to a WebSocket server: each connection accepted "
                    "on the listen address opens one WebSocket to URL.")
    parser.add_argument("listen", metavar="[LISTEN_HOST:]LISTEN_PORT",
                        help="where to accept TCP connections; - for standard input and "
                             "output (one session, as with --once)")
    parser.add_argument("url", metavar="URL", help="ws:// or wss:// URL; user:password@ "
                        "in it is sent as Basic credentials")
    parser.add_argument("-v", "--verbose", action="store_true", help="verbose messages")
    parser.add_argument("--log-file", metavar="FILE",
                        help="write messages to FILE too (reopened on SIGHUP and when moved)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="classic",
                        help="classic: plain lines (default); json: one JSON object a line")
    parser.add_argument("--traffic", action="store_true",
                        help="traffic markers on standard output, as the server's (not with -)")
    parser.add_argument("--once", action="store_true",
                        help="serve one connection and exit with its status")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="extra handshake header (repeatable): Authorization, Cookie, "
                             "Origin, ...")
    parser.add_argument("--subprotocol", action="append", metavar="NAME",
                        help=f"subprotocol to offer (repeatable; default {DEFAULT_SUBPROTOCOL})")
    parser.add_argument("--cafile", metavar="FILE",
                        help="verify the server against these CAs, not the system store")
    parser.add_argument("--cert", metavar="FILE", help="client certificate (PEM)")
    parser.add_argument("--key", metavar="FILE", help="its private key, if not in --cert")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the server's certificate (named only)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="connect and handshake deadline (default 10)")
    return parser


def serve_stdio(config: ClientConfig) -> int:
    """``-``: one session over standard input and output (``ProxyCommand`` use)."""
    pump = StdioPump()
    status = relay_one(pump.start(), "stdio", config)
    pump.finish(config.timeout)
    return status


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad listen port: {value}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip() or any(c in value for c in "\r\n"):
        raise ValueError(f"bad header (want 'Name: value'): {value!r}")
    return name.strip(), content.strip()


def configure(args: argparse.Namespace) -> ClientConfig:
    """Check the options; ValueError (usage) or OSError/ssl.SSLError (TLS files) if bad."""
    if args.traffic and args.listen == "-":
        raise ValueError(TRAFFIC_WITH_STDIO)
    endpoint = parse_url(args.url)
    headers = [parse_header(h) for h in args.header]
    request(endpoint, headers, args.subprotocol or [DEFAULT_SUBPROTOCOL])  # checked once here
    context = None
    if endpoint.secure:
        context = client_context(args.cafile, args.cert, args.key, args.insecure)
    return ClientConfig(endpoint, args.url, headers, args.subprotocol or [DEFAULT_SUBPROTOCOL],
                        context, args.timeout, args.traffic)


def relay_one(conn: socket.socket, peer: str, config: ClientConfig) -> int:
    """Open the WebSocket for one accepted connection and relay; the exit status."""
    try:
        tune_tcp(conn)
        try:
            ws_sock, ws, rest = open_websocket(config.endpoint, config.headers,
                                               config.subprotocols, config.context,
                                               config.timeout)
        except HandshakeRefused as exc:
            log.error("%s: %s: handshake refused: %s", peer, config.url, exc)
            return FAILED
        except TargetError as exc:
            log.error("%s: %s: cannot connect: %s", peer, config.url, exc)
            return FAILED
        log.info("%s: connected to %s", peer, config.url)
        tap = _traffic_tap() if config.traffic else None
        relay = Relay(ws_sock, conn, ServerPeerStream(ws), tap=tap)
        try:
            info = relay.run(rest)
        finally:
            ws_sock.close()
            if tap is not None:
                tap.close()  # ends the session's line of markers
        # -v: the size of the session, as the relay counted it (wire bytes from the server).
        log.debug("%s: %d bytes from the TCP side, %d bytes from the server", peer,
                  relay.received_from_target, relay.received_from_client)
        side = "server" if info.by_client else "us"
        log.info("%s: closed by %s: %d %s", peer, side, info.code, info.reason)
        return 0 if info.code == NORMAL else FAILED
    finally:
        conn.close()


def _traffic_tap() -> SessionTap:
    """``--traffic`` for one session: the relay's "client" is the WebSocket server, its
    "target" the TCP connection (docs/client.rst has the mapping)."""
    markers = TrafficMarkers(legend=CLIENT_LEGEND)
    return SessionTap([markers], markers=markers)


def serve(listener: socket.socket, config: ClientConfig, once: bool) -> int:
    while True:
        try:
            conn, addr = listener.accept()
        except OSError as exc:  # EMFILE and the like: wait instead of spinning (#15)
            log.warning("accept failed: %s", exc)
            time.sleep(ACCEPT_BACKOFF)
            continue
        peer = f"{addr[0]}:{addr[1]}"
        if once:
            listener.close()
            return relay_one(conn, peer, config)
        threading.Thread(target=relay_one, args=(conn, peer, config), daemon=True).start()


def _reopen_logs() -> None:
    reopened = logsetup.reopen()
    if reopened:
        log.info("%s", RELOADED.format(", ".join(f"log file {p}" for p in reopened)))
    else:
        log.info("%s", NOTHING_TO_RELOAD)


def _setup_logging(args: argparse.Namespace) -> None:
    """The server's logging (issue #20 §2): stderr always, ``--log-file`` added (created
    0640, followed when moved), ``-v`` for DEBUG, ``--log-format json``. Raises OSError."""
    logsetup.configure_logs(LogSettings(args.verbose, args.log_file,
                                        log_format=args.log_format))
    # SIGHUP reopens the log file (logrotate), except in a terminal, where a hangup means
    # the terminal went away and the process ends, as the server's (#16 Operations 2 §1).
    if not os.isatty(2):
        signal.signal(signal.SIGHUP, in_thread(_reopen_logs))  # as the server's


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = configure(args)
        host, port = parse_listen(args.listen) if args.listen != "-" else ("", 0)
    except ValueError as exc:
        parser.error(str(exc))
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"TLS files: {exc}")
    if args.log_file:  # absolute, as in the server's settings: the SIGHUP line names it
        args.log_file = os.path.abspath(args.log_file)
    try:
        _setup_logging(args)
    except OSError as exc:
        # One line, not a traceback (#15 Reliability 2 §3): e.g. a missing directory.
        sys.stderr.write(LOG_FILE_ERROR.format(path=args.log_file, cause=exc.strerror or exc))
        return FAILED
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.listen == "-":
        return serve_stdio(config)
    try:
        listener = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return FAILED
    log.info("websockify-client: %s:%d -> %s", host, port, args.url)
    try:
        with listener:
            return serve(listener, config, args.once)
    except KeyboardInterrupt:
        return 0
