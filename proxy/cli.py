"""The ``websockify`` command: parse the command line into ``Settings`` and run the server.

The only module that reads ``sys.argv``/``os.environ``, installs root log handlers or
installs signal handlers. Usage errors use websockify's (optparse's) format and wording,
exit status 2 (spec §2.1, §2.4).
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

import configargparse

from proxy import __version__, logsetup
from proxy.errors import StartupError
from proxy.server import ProxyServer
from proxy.settings import Settings, TextFrames

log = logging.getLogger(__name__)

PROG = "websockify"
# optparse's usage block, verbatim (spec §2.1); note the space after "Usage:".
USAGE = (
    "Usage: \n"
    "    websockify [options] [source_addr:]source_port target_addr:target_port\n"
    "    websockify [options] --token-plugin=CLASS [source_addr:]source_port\n"
    "    websockify [options] --unix-target=FILE [source_addr:]source_port\n"
    "    websockify [options] [source_addr:]source_port -- WRAP_COMMAND_LINE\n"
)


class _Parser(configargparse.ArgumentParser):  # type: ignore[misc]
    """ConfigArgParse with optparse's usage text and error format."""

    def format_usage(self) -> str:
        return USAGE

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(USAGE + "\n")
        sys.stderr.write(f"{PROG}: error: {message}\n")
        sys.exit(2)


def build_parser() -> _Parser:
    """Every option, with websockify's names; no positional actions (notes §3.2)."""
    parser = _Parser(
        prog=PROG,
        usage=USAGE,
        add_help=True,
        auto_env_var_prefix="WEBSOCKIFY_",
        add_env_var_help=False,
        add_config_file_help=False,
        args_for_setting_config_path=["-c", "--config"],
        config_arg_help_message="read options from this file (same long names, key = value)",
    )
    add = parser.add_argument
    add("-v", "--verbose", action="store_true", help="verbose messages")
    add("--heartbeat", type=int, default=0, metavar="INTERVAL",
        help="send a ping to the client every INTERVAL seconds")
    add("--text-frames", choices=[m.value for m in TextFrames], default="accept",
        help="accept (forward complete, valid UTF-8 text messages; the default) or "
             "reject (close 1003, as websockify does)")
    add("--version", action="version", version=f"%(prog)s (websockify-threaded) {__version__}")
    return parser


def _split_address(value: str) -> tuple[str, str] | None:
    """``host:port`` split at the last colon, brackets stripped (spec §2.3)."""
    if ":" not in value:
        return None
    host, port = value.rsplit(":", 1)
    return host.strip("[]"), port


def _parse_positionals(parser: _Parser, args: list[str]) -> dict[str, Any]:
    """websockify's positional checks, in its order and with its messages (spec §2.4)."""
    if not args:
        parser.error("Too few arguments")
    listen_host, listen_port = _split_address(args[0]) or ("", args[0])
    try:
        port = int(listen_port)
    except ValueError:
        parser.error("Error parsing listen port")
    if len(args) < 2:
        parser.error("Too few arguments")
    target = _split_address(args[1])
    if target is None:
        parser.error("Error parsing target")
    try:
        target_port = int(target[1])
    except ValueError:
        parser.error("Error parsing target port")
    if len(args) > 2:
        parser.error("Too many arguments")
    return dict(listen_host=listen_host, listen_port=port, target_host=target[0],
                target_port=target_port)


def parse_cli(argv: Sequence[str]) -> Settings:
    """Parse ``argv`` (without the program name) into ``Settings``; exit 2 on usage errors."""
    parser = build_parser()
    opts, rest = parser.parse_known_args(list(argv))
    unknown = [arg for arg in rest if arg.startswith("-") and arg != "-"]
    if unknown:
        parser.error(f"no such option: {unknown[0].split('=', 1)[0]}")
    return Settings(
        **_parse_positionals(parser, rest),
        verbose=opts.verbose,
        heartbeat=float(opts.heartbeat),
        text_frames=TextFrames(opts.text_frames),
    )


class _Terminate(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave ``serve_forever`` in the main thread."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminate(signum)


def log_banner(settings: Settings) -> None:
    """The first lines of websockify's startup banner (spec §3.2)."""
    log.info("WebSocket server settings:")
    log.info("  - Listen on %s", settings.listen_display)
    log.info("  - No SSL/TLS support (no cert file)")


def serve(settings: Settings) -> int:
    """Run the server until SIGTERM/SIGINT; return the exit status."""
    log_banner(settings)
    try:
        server = ProxyServer(settings)
    except (OSError, StartupError) as exc:
        # websockify logs "Openening socket failed" and exits 0 (§2.5, §13.13): exit 1.
        message = str(exc) if isinstance(exc, StartupError) else f"Opening socket failed: {exc}"
        log.error("%s", message)
        return 1
    log.info("  - proxying from %s to %s", settings.listen_display, settings.target_display)
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever()
    except _Terminate:
        log.info("In exit")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    settings = parse_cli(sys.argv[1:] if argv is None else argv)
    logsetup.configure(settings.verbose)
    return serve(settings)
