"""The ``websockify`` command line: websockify 0.13.0's options, parsed into ``Settings``.

The only module that reads ``sys.argv``/``os.environ``. Usage errors keep optparse's
format and websockify's wording with exit status 2 (spec §2.1, §2.4); ConfigArgParse adds
``--config FILE`` and ``WEBSOCKIFY_*`` variables (command line > env > file).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import configargparse

from proxy import __version__
from proxy.observe import logsetup
from proxy.process import activation, reverseopts, runner, sdnotify
from proxy.process.argv import expand_argv
from proxy.process.configure import settings_from
from proxy.process.optiontypes import (choice, header_type, optparse_int, positive_int, seconds,
                                       token_from_type, trusted_type, url_path_type)
from proxy.settings import (CONNECT_TIMEOUT, MAX_MESSAGE_SIZE, MAX_REQUEST_HEAD, REQUEST_TIMEOUT,
                            STALL_TIMEOUT, ReplyFrames, Settings, TextFrames)
from proxy.observe.sessionlog import LOG_FORMATS

PROG = "websockify"
# optparse's usage block, verbatim (spec §2.1); note the space after "Usage:".
USAGE = (
    "Usage: \n"
    "    websockify [options] [source_addr:]source_port target_addr:target_port\n"
    "    websockify [options] --token-plugin=CLASS [source_addr:]source_port\n"
    "    websockify [options] --unix-target=FILE [source_addr:]source_port\n"
    "    websockify [options] [source_addr:]source_port -- WRAP_COMMAND_LINE\n"
)
SSL_VERSIONS = ("default", "tlsv1_1", "tlsv1_2", "tlsv1_3")
WRAP_MODES = ("exit", "ignore", "respawn")
#: A --log-file that cannot be opened at startup (#15 Reliability 2 §3).
LOG_FILE_ERROR = "{prog}: cannot open log file {path}: {cause}\n"


class Parser(configargparse.ArgumentParser):  # type: ignore[misc]
    """ConfigArgParse with optparse's usage text, help layout and error format."""

    def format_usage(self) -> str:
        return USAGE

    def format_help(self) -> str:
        formatter = self._get_formatter()
        formatter.start_section("Options")
        formatter.add_arguments(self._actions)
        formatter.end_section()
        return USAGE + "\n" + str(formatter.format_help())

    def error(self, message: str) -> NoReturn:
        # argparse says "argument --x: ...", optparse "option --x: ..." (spec §2.4).
        if message.startswith("argument "):
            message = "option " + message[len("argument "):]
        sys.stderr.write(USAGE + "\n")
        sys.stderr.write(f"{PROG}: error: {message}\n")
        sys.exit(2)


#: An option without a value (optparse's ``store_true``).
FLAG: dict[str, Any] = {"action": "store_true"}


def _add_general(parser: Parser) -> None:
    """websockify's first options: logging, recording, process life (spec §2.2)."""
    add = parser.add_argument
    add("-v", "--verbose", help="verbose messages", **FLAG)
    add("--traffic", help="per frame traffic", **FLAG)
    add("--record", metavar="FILE", help="record sessions to FILE.[session_number]")
    add("-D", "--daemon", help="become a daemon (background process)", **FLAG)
    add("--run-once", help="handle a single WebSocket connection and exit", **FLAG)
    add("--timeout", type=optparse_int, default=0,
        help="after TIMEOUT seconds exit when not connected")
    add("--idle-timeout", type=optparse_int, default=0,
        help="server exits after IDLE_TIMEOUT seconds if there are no active connections")


def _add_tls(parser: Parser) -> None:
    """websockify's TLS options (spec §2.2, §7.2)."""
    add = parser.add_argument
    # No default here: configure uses self.pem and knows whether --cert was given (§3.2).
    add("--cert", help="SSL certificate file (default self.pem)")
    add("--key", help="SSL key file (if separate from cert)")
    add("--key-password", help="SSL key password")
    add("--ssl-only", help="disallow non-encrypted client connections", **FLAG)
    add("--ssl-target", help="connect to SSL target as SSL client", **FLAG)
    add("--verify-client", help="require encrypted client to present a valid certificate", **FLAG)
    add("--cafile", metavar="FILE",
        help="file of concatenated certificates of authorities trusted for client certificates")
    add("--ssl-version", type=choice(*SSL_VERSIONS), default="default",
        help="minimum TLS version: " + ", ".join(SSL_VERSIONS))
    add("--ssl-ciphers", help="list of ciphers allowed for connection (OpenSSL syntax)")


def _add_listen_and_web(parser: Parser) -> None:
    """websockify's listening, web server and wrap options (spec §2.2)."""
    add = parser.add_argument
    add("--unix-listen", metavar="FILE", help="listen on a unix socket instead of TCP")
    add("--unix-listen-mode", default="0600",
        help="permission bits of the --unix-listen socket file (octal, default 0600)")
    add("--unix-target", metavar="FILE", help="connect to a unix socket target")
    add("--inetd", help="inetd mode, receive listening socket from stdin", **FLAG)
    add("--web", metavar="DIR", help="run webserver on same port; serve files from DIR")
    add("--web-auth", help="require authentication to access webserver", **FLAG)
    add("--wrap-mode", type=choice(*WRAP_MODES), default="exit", metavar="MODE",
        help="action to take when the wrapped program exits or daemonizes: exit, ignore, respawn")
    add("-6", "--prefer-ipv6", help="prefer IPv6 when resolving source_addr", **FLAG)
    add("--libserver", **FLAG,
        help="accepted for compatibility and ignored (websockify's is broken)")


def _add_targets_and_logs(parser: Parser) -> None:
    """websockify's token, auth, heartbeat and log options, its last ones (spec §2.2)."""
    add = parser.add_argument
    add("--target-config", metavar="FILE",
        help="configuration file containing valid targets (= --token-plugin TokenFile)")
    add("--token-plugin", metavar="CLASS", help="use a Python class to map tokens to targets")
    add("--token-source", metavar="ARG", help="an argument to be passed to the token plugin")
    add("--host-token", help="use the Host header instead of ?token= as the token", **FLAG)
    add("--auth-plugin", metavar="CLASS", help="use a Python class to authenticate connections")
    add("--auth-source", metavar="ARG", help="an argument to be passed to the auth plugin")
    add("--heartbeat", type=optparse_int, default=0, metavar="INTERVAL",
        help="send a ping to the client every INTERVAL seconds")
    add("--log-file", metavar="FILE", help="file where logs will be saved")
    add("--syslog", metavar="SERVER", help="log to syslog server: host:port or a socket path")
    add("--legacy-syslog", help="use the old syslog protocol instead of RFC 5424", **FLAG)
    add("--file-only", help="use this to disable directory listings in the web server", **FLAG)


def _add_ours_requests(parser: Parser) -> None:
    """Ours (not in websockify 0.13.0): tokens, client address, traffic, TLS to the target, web."""
    add = parser.add_argument
    add("--silent-token-errors", **FLAG,
        help="on a missing or unknown token close without an HTTP answer, as websockify "
             "does (default: 400 or 404)")
    add("--token-from", type=token_from_type, metavar="SOURCE",
        help="where the token is: query (?token=, default), path (last path segment), "
             "cookie:NAME or header:NAME")
    add("--connect-before-upgrade", **FLAG,
        help="resolve the token and connect the target before answering 101 "
             "(unreachable: 502, timeout: 504)")
    add("--trusted-proxy", type=trusted_type, metavar="ADDR[,ADDR|CIDR]",
        help="take the client address for logs from X-Forwarded-For/Forwarded when the "
             "peer is one of these proxies")
    add("--target-proxy-protocol", **FLAG,
        help="send a PROXY protocol v1 header with the client address to the target")
    add("--traffic-dump", **FLAG,
        help="log a hex+ASCII dump of what each read carried (direction, connection, size)")
    add("--traffic-dump-bytes", type=optparse_int, default=64, metavar="N",
        help="bytes shown per --traffic-dump entry (default 64)")
    add("--text-frames", type=choice(*(m.value for m in TextFrames)), default="accept",
        help="accept: forward text as it arrives, as valid UTF-8 (default); "
             "reject: close 1003 as websockify does")
    add("--ssl-target-cafile", metavar="FILE",
        help="with --ssl-target: trust only the CA certificates in FILE for the target")
    add("--ssl-target-no-verify", **FLAG,
        help="with --ssl-target: do not verify the target's certificate (lab use only)")
    add("--diagnostics", **FLAG,
        help="serve a live diagnostics page and the JavaScript client library at "
             "/websockify/ (see --diagnostics-path)")
    add("--diagnostics-path", metavar="PATH",
        help="URL path of the --diagnostics page (default /websockify/)")
    add("--web-follow-symlinks", **FLAG,
        help="with --web: serve symlinks that lead out of DIR, as websockify does "
             "(default: only those resolving inside DIR)")


def _add_limits(parser: Parser) -> None:
    """Limits and timeouts (issue 9, docs/reliability.rst)."""
    add = parser.add_argument
    add("--reply-frames", type=choice(*(m.value for m in ReplyFrames)), default="binary",
        metavar="TYPE",
        help="frame type of the target's data: binary (default, as websockify), text, or "
             "mirror (the type of the client's last message)")
    add("--compression", **FLAG,
        help="accept permessage-deflate when the client offers it (RFC 7692)")
    add("--max-message-size", type=positive_int, default=MAX_MESSAGE_SIZE, metavar="BYTES",
        help=f"close 1009 on a client message larger than this (default {MAX_MESSAGE_SIZE})")
    add("--max-connections", type=optparse_int, default=0, metavar="N",
        help="answer 503 beyond N live connections (default: 90%% of the open-file limit / 2)")
    add("--max-connections-per-ip", type=optparse_int, default=0, metavar="N",
        help="answer 503 beyond N live connections from one address (default: no limit)")
    add("--conn-idle-timeout", type=seconds, default=0.0, metavar="SECONDS",
        help="close a session (1000) after SECONDS without data either way (default: off)")
    add("--max-session-time", type=seconds, default=0.0, metavar="SECONDS",
        help="close a session (1001) SECONDS after it started (default: off)")
    add("--heartbeat-timeout", type=seconds, default=0.0, metavar="SECONDS",
        help="close a session (1011) whose client leaves a ping unanswered for SECONDS; "
             "pings every --heartbeat seconds, else every SECONDS/2 (default: off)")
    add("--stall-timeout", type=seconds, default=STALL_TIMEOUT, metavar="SECONDS",
        help="end a session whose client or target accepts none of the data queued for it "
             f"for SECONDS (target: close 1011; 0 = off; default: {STALL_TIMEOUT:g})")
    add("--handshake-timeout", type=seconds, default=REQUEST_TIMEOUT, metavar="SECONDS",
        help=f"deadline for TLS and the HTTP request after the first byte "
             f"(default {REQUEST_TIMEOUT:g})")
    add("--connect-timeout", type=seconds, default=CONNECT_TIMEOUT, metavar="SECONDS",
        help=f"deadline for connecting to the target (default {CONNECT_TIMEOUT:g})")
    add("--max-request-head", type=positive_int, default=MAX_REQUEST_HEAD, metavar="BYTES",
        help=f"answer 431 to a request line plus headers over BYTES (default {MAX_REQUEST_HEAD})")


def _add_operations(parser: Parser) -> None:
    """Operations (issue 10; docs/operations.rst)."""
    add = parser.add_argument
    add("--pid-file", metavar="FILE", help="write the process id to FILE (removed at exit)")
    add("--listen-fd", type=optparse_int, metavar="FD",
        help="serve the listening socket inherited as FD (set by systemd socket "
             "activation, LISTEN_FDS)")
    add("--metrics-path", type=url_path_type, metavar="PATH",
        help="serve counters in the Prometheus text format at PATH")
    add("--health-path", type=url_path_type, metavar="PATH",
        help="answer 200 at PATH while serving, 503 while draining, at --max-connections "
             "or short of file descriptors (no --web-auth)")
    add("--stats-interval", type=seconds, default=0.0, metavar="N",
        help="log the --metrics-path counters as one line every N seconds")
    add("--log-format", type=choice(*LOG_FORMATS), default="classic",
        help="classic: websockify's lines (default); json: one JSON record per connection "
             "instead of the per-connection lines; both")
    add("--drain-timeout", type=seconds, default=0.0, metavar="N",
        help="on SIGTERM stop taking sessions and let open ones run up to N seconds "
             "before closing them with 1001 (default 0)")
    add("--response-header", type=header_type, action="append", metavar="'NAME: VALUE'",
        help="add this header to every HTTP response and the 101 (repeatable)")
    add("--workers", type=optparse_int, default=1, metavar="N",
        help="serve with N processes sharing the listening socket, each with its own "
             "threads (default 1; docs/scaling.rst)")


def _add_admin(parser: Parser) -> None:
    """The live-sessions API (issue #21; docs/operations.rst)."""
    add = parser.add_argument
    add("--admin-path", type=url_path_type, metavar="PATH",
        help="serve the live sessions as JSON at PATH/sessions and let them be closed "
             "(needs --admin-auth-source)")
    add("--admin-auth-source", metavar="USER:PASSWORD",
        help="the Basic credentials every --admin-path request must carry")
    add("--admin-allow", type=trusted_type, action="append", metavar="ADDR[,ADDR|CIDR]",
        help="peers that may use --admin-path (repeatable; default 127.0.0.0/8 and ::1)")
    add("--admin-show-tokens", **FLAG,
        help="list whole tokens at --admin-path (default: their first 4 characters)")


def build_parser() -> Parser:
    """Every websockify 0.13.0 option in its help order (spec §2.2), then ours."""
    parser = Parser(prog=PROG, usage=USAGE, allow_abbrev=False, auto_env_var_prefix="WEBSOCKIFY_",
                    add_env_var_help=False, add_config_file_help=False)
    _add_general(parser)
    _add_tls(parser)
    _add_listen_and_web(parser)
    _add_targets_and_logs(parser)
    _add_ours_requests(parser)
    _add_limits(parser)
    _add_operations(parser)
    _add_admin(parser)
    reverseopts.add_options(parser)
    add = parser.add_argument
    add("-c", "--config", is_config_file=True, metavar="FILE",
        help="read options from FILE (long option names, `name = value` lines)")
    add("--version", action="version", version=f"%(prog)s (websockify-threaded) {__version__}")
    return parser


def _long_options(parser: Parser) -> dict[str, bool]:
    """Long option name -> whether it takes a value."""
    return {name: action.nargs != 0 for action in parser._actions
            for name in action.option_strings if name.startswith("--")}


def parse_cli(argv: Sequence[str]) -> Settings:
    """Parse ``argv`` (without the program name) into ``Settings``; exit 2 on usage errors."""
    return parse_args(argv)[0]


def parse_args(argv: Sequence[str]) -> tuple[Settings, argparse.Namespace]:
    """``parse_cli``, also returning the raw options (``--libserver`` is in no ``Settings``)."""
    parser = build_parser()
    args = list(argv)
    split = args.index("--") if "--" in args else len(args)
    head, tail = args[:split], args[split + 1:]
    try:
        head = expand_argv(head, _long_options(parser))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        opts, rest = parser.parse_known_args(head)
    except UnicodeDecodeError as exc:
        # ConfigArgParse reports a config file it cannot open, not one that is not UTF-8
        # text: that was a traceback (#15 Reliability 2).
        parser.error(f"Unable to read config file: {_config_file(head)}. Error: {exc}")
    if opts.listen_fd is None and not opts.inetd:
        # systemd socket activation: serve the passed socket, no listen positional.
        fds = activation.listen_fds(os.environ, os.getpid())
        if fds:
            opts.listen_fd = fds[0]
    unknown = [arg for arg in rest if arg.startswith("-") and arg != "-"]
    if unknown:
        parser.error(f"no such option: {unknown[0].split('=', 1)[0]}")
    return settings_from(opts, rest + tail, "--" in args, parser.error), opts


def _config_file(args: list[str]) -> str:
    """The ``--config FILE`` that ``args`` name (the last one), for an error message."""
    found = "?"
    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--config="):
            found = arg.split("=", 1)[1]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    settings, opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        logsetup.configure(settings)
    except OSError as exc:
        # One line, not a traceback (#15 Reliability 2 §3): e.g. a missing directory.
        sys.stderr.write(LOG_FILE_ERROR.format(prog=PROG, path=settings.log_file,
                                               cause=exc.strerror or exc))
        return 1
    # Before anything can fork or run a command: they must not inherit NOTIFY_SOCKET (#16).
    sdnotify.install(os.environ)
    if opts.libserver:
        # websockify's --libserver engine is broken (spec §7.10); ours is always threaded.
        logging.getLogger("proxy.cli").warning("warning: --libserver ignored: connections are "
                                               "always handled by threads")
    return runner.serve(settings, os.environ)
