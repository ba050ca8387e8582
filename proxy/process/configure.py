"""Turn parsed options into ``Settings`` with websockify's checks, order and messages.

Pure apart from reading the file system for the ``--ssl-only`` certificate check (as
websockify does) and the ``--web`` directory check, and making paths absolute. Every
message here is a usage error (exit 2) whose text is fixed by spec §2.4.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from proxy.settings import DEFAULT_CERT, ReplyFrames, Settings, TextFrames
from proxy.serve.web import DIAGNOSTICS_PATH
from proxy.process import reverseopts

Error = Callable[[str], NoReturn]


@dataclass(frozen=True)
class Positionals:
    """What the positional arguments say (spec §2.3)."""

    listen_host: str = ""
    listen_port: int = 0
    target_host: str = ""
    target_port: int = 0
    wrap_cmd: tuple[str, ...] = ()


def split_address(value: str) -> tuple[str, str] | None:
    """``host:port`` split at the last colon with brackets stripped; None without a colon."""
    if ":" not in value:
        return None
    host, port = value.rsplit(":", 1)
    return host.strip("[]"), port


def check_requirements(opts: argparse.Namespace, error: Error) -> None:
    """The "You must use X to use Y" family, in websockify's order (spec §2.4)."""
    pairs = [
        (opts.token_source, opts.token_plugin, "--token-plugin", "--token-source"),
        (opts.host_token, opts.token_plugin, "--token-plugin", "--host-token"),
        (opts.auth_source, opts.auth_plugin, "--auth-plugin", "--auth-source"),
        (opts.web_auth, opts.auth_plugin, "--auth-plugin", "--web-auth"),
        # --diagnostics pages and --metrics-path honour --web-auth too (ours).
        (opts.web_auth, opts.web or opts.diagnostics or opts.metrics_path, "--web",
         "--web-auth"),
        (opts.legacy_syslog, opts.syslog, "--syslog", "--legacy-syslog"),
        (opts.token_from, opts.token_plugin, "--token-plugin", "--token-from"),
        # Ours (not in websockify 0.13.0).
        (opts.ssl_target_cafile, opts.ssl_target, "--ssl-target", "--ssl-target-cafile"),
        (opts.ssl_target_no_verify, opts.ssl_target, "--ssl-target", "--ssl-target-no-verify"),
        (opts.diagnostics_path, opts.diagnostics, "--diagnostics", "--diagnostics-path"),
        (opts.web_follow_symlinks, opts.web, "--web", "--web-follow-symlinks"),
    ]
    for used, required, required_name, used_name in pairs:
        if used and not required:
            error(f"You must use {required_name} to use {used_name}")
    if opts.syslog and ":" in opts.syslog:
        try:
            int(opts.syslog.rsplit(":", 1)[1])
        except ValueError:
            error("Error parsing syslog port")
    if opts.ssl_target_cafile and opts.ssl_target_no_verify:
        error("--ssl-target-cafile and --ssl-target-no-verify exclude each other")
    if opts.web and not os.path.isdir(opts.web):
        error(f"--web: no such directory: {opts.web}")
    if opts.diagnostics_path is not None and not opts.diagnostics_path.startswith("/"):
        error("--diagnostics-path must start with /")
    cert = opts.cert or DEFAULT_CERT
    if opts.ssl_only and not os.path.exists(cert):
        error(f"SSL only and {cert} not found")


def parse_unix_mode(opts: argparse.Namespace, error: Error) -> int:
    """``--unix-listen-mode`` as octal (websockify's ``int(mode, 8)``)."""
    try:
        return int(opts.unix_listen_mode, 8)
    except (TypeError, ValueError):
        error("Error parsing listen unix socket mode")


#: The largest TCP port number.
MAX_PORT = 65535


def parse_port(text: str, lowest: int, message: str, error: Error) -> int:
    """A port number in ``lowest``..65535, else ``error(message)`` (websockify's texts).

    websockify takes any integer and the socket layer wraps it: ``99999`` listens on
    34463 and ``:70000`` connects to 4464 (#16 Operations 2). Here they are usage errors.
    """
    try:
        port = int(text)
    except ValueError:
        error(message)
    if not lowest <= port <= MAX_PORT:
        error(message)
    return port


def parse_positionals(opts: argparse.Namespace, args: list[str], wrap: bool,
                      error: Error) -> Positionals:
    """websockify's positional rules and messages (spec §2.3, §2.4).

    Unlike websockify, the wrapped command is what follows the listen address, so
    ``--unix-listen``/``--inetd`` no longer drop its first word (§2.3 quirk).
    """
    args = list(args)
    listen_host, listen_port = "", 0
    if not (opts.inetd or opts.unix_listen or opts.listen_fd is not None):
        if not args:
            error("Too few arguments")
        first = args.pop(0)
        listen_host, port_text = split_address(first) or ("", first)
        # 0 binds a free port, as in websockify.
        listen_port = parse_port(port_text, 0, "Error parsing listen port", error)
    wrap_cmd = tuple(args) if wrap else ()
    if wrap_cmd or opts.unix_target or opts.token_plugin:
        if args and not wrap_cmd:
            error("Too many arguments")
        return Positionals(listen_host, listen_port, wrap_cmd=wrap_cmd)
    if not args and opts.reverse_listen:  # sessions go only to parked servers (issue #20)
        return Positionals(listen_host, listen_port)
    if not args:
        error("Too few arguments")
    target = split_address(args[0])
    if target is None:
        error("Error parsing target")
    target_port = parse_port(target[1], 1, "Error parsing target port", error)
    if len(args) > 1:
        error("Too many arguments")
    return Positionals(listen_host, listen_port, target[0], target_port)


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def _syslog_address(value: str | None) -> str | None:
    """``host:port`` stays as given; a socket path is made absolute (spec §3.6)."""
    if not value or ":" in value:
        return value
    return os.path.abspath(value)


def _diagnostics_path(opts: argparse.Namespace) -> str | None:
    """``--diagnostics[-path]`` as a prefix ending in ``/``; None when off."""
    if not opts.diagnostics:
        return None
    path: str = opts.diagnostics_path or DIAGNOSTICS_PATH
    return path if path.endswith("/") else path + "/"


def _limits(opts: argparse.Namespace, error: Error) -> dict[str, Any]:
    """The limits and timeouts of issue 9 as ``Settings`` fields (docs/reliability.rst)."""
    for name in ("max_connections", "max_connections_per_ip"):
        if getattr(opts, name) < 0:
            error(f"--{name.replace('_', '-')} must not be negative")
    return {
        "text_frames": TextFrames(opts.text_frames),
        "heartbeat": float(opts.heartbeat),
        "reply_frames": ReplyFrames(opts.reply_frames),
        "compression": opts.compression,
        "max_message_size": opts.max_message_size,
        "max_connections": opts.max_connections,
        "max_connections_per_ip": opts.max_connections_per_ip,
        "conn_idle_timeout": opts.conn_idle_timeout,
        "max_session_time": opts.max_session_time,
        "heartbeat_timeout": opts.heartbeat_timeout,
        "stall_timeout": opts.stall_timeout,
        "request_timeout": opts.handshake_timeout,
        "connect_timeout": opts.connect_timeout,
        "max_request_head": opts.max_request_head,
    }


def settings_from(opts: argparse.Namespace, args: list[str], wrap: bool,
                  error: Error) -> Settings:
    """Check ``opts`` and the positionals ``args`` as websockify does; build ``Settings``.

    Args:
        wrap: a literal ``--`` was on the command line (wrap mode, spec §2.3).
        error: reports a usage error and does not return (exit 2).
    """
    if opts.target_config:
        # Deprecated alias, applied before the checks as websockify does (spec §2.2).
        opts.token_plugin = "TokenFile"
        opts.token_source = os.path.abspath(opts.target_config)
    check_requirements(opts, error)
    mode = parse_unix_mode(opts, error) if opts.unix_listen else 0o600
    pos = parse_positionals(opts, args, wrap, error)
    return Settings(
        **_listening(opts, pos, mode),
        **_tokens(opts),
        **_web(opts),
        **_tls(opts),
        **_logging(opts),
        run_once=opts.run_once,
        timeout=float(opts.timeout),
        idle_timeout=float(opts.idle_timeout),
        **_limits(opts, error),
        **_operations(opts, pos.wrap_cmd, error),
        **_admin(opts, error),
        **reverseopts.settings_part(opts, error),
    )


def _listening(opts: argparse.Namespace, pos: Positionals, mode: int) -> dict[str, Any]:
    """Where to listen and the configured target (spec §2.3)."""
    return {
        "listen_host": pos.listen_host,
        "listen_port": pos.listen_port,
        "unix_listen": _absolute(opts.unix_listen),
        "unix_listen_mode": mode,
        "inetd": opts.inetd,
        "target_host": pos.target_host,
        "target_port": pos.target_port,
        "unix_target": _absolute(opts.unix_target),
        "wrap_cmd": pos.wrap_cmd,
        "prefer_ipv6": opts.prefer_ipv6,
        "target_proxy_protocol": opts.target_proxy_protocol,
    }


def _tokens(opts: argparse.Namespace) -> dict[str, Any]:
    """Token and auth plugins and where the client address comes from (spec §8)."""
    return {
        "token_plugin": opts.token_plugin,
        "token_source": opts.token_source,
        "host_token": opts.host_token,
        "silent_token_errors": opts.silent_token_errors,
        "token_from": opts.token_from or "query",
        "connect_before_upgrade": opts.connect_before_upgrade,
        "trusted_proxies": opts.trusted_proxy or (),
        "auth_plugin": opts.auth_plugin,
        "auth_source": opts.auth_source,
    }


def _web(opts: argparse.Namespace) -> dict[str, Any]:
    """``--web`` and the built-in pages (spec §4.5)."""
    return {
        "web": _absolute(opts.web),
        "web_auth": opts.web_auth,
        "file_only": opts.file_only,
        "web_follow_symlinks": opts.web_follow_symlinks,
        "diagnostics_path": _diagnostics_path(opts),
    }


def _tls(opts: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``Settings.tls`` (spec §7.2, §7.6)."""
    return {
        # None means the default self.pem, which may be absent (spec §3.2).
        "cert": os.path.abspath(opts.cert or DEFAULT_CERT),
        "cert_required": opts.cert is not None or opts.key is not None,
        "key": _absolute(opts.key),
        "key_password": opts.key_password,
        "ssl_only": opts.ssl_only,
        "ssl_version": opts.ssl_version,
        "ssl_ciphers": opts.ssl_ciphers,
        "verify_client": opts.verify_client,
        "cafile": _absolute(opts.cafile),
        "ssl_target": opts.ssl_target,
        "ssl_target_cafile": _absolute(opts.ssl_target_cafile),
        "ssl_target_no_verify": opts.ssl_target_no_verify,
    }


def _logging(opts: argparse.Namespace) -> dict[str, Any]:
    """Logs and what is written about the traffic (spec §3)."""
    return {
        "verbose": opts.verbose,
        "log_file": _absolute(opts.log_file),
        "syslog": _syslog_address(opts.syslog),
        "legacy_syslog": opts.legacy_syslog,
        "traffic": opts.traffic,
        "traffic_dump": opts.traffic_dump_bytes if opts.traffic_dump else 0,
        "record": _absolute(opts.record),
    }


def _operations(opts: argparse.Namespace, wrap_cmd: tuple[str, ...],
                error: Error) -> dict[str, Any]:
    """The issue-10 options (docs/operations.rst)."""
    if opts.inetd and opts.listen_fd is not None:
        error("--inetd and --listen-fd exclude each other")
    if opts.metrics_path and opts.metrics_path == opts.health_path:
        error("--metrics-path and --health-path must differ")
    if opts.workers < 1:
        error("--workers must be at least 1")
    if opts.workers > 1 and (opts.run_once or opts.inetd or wrap_cmd):
        # One connection, one inherited connection, one wrapped command: nothing to share.
        what = "--run-once" if opts.run_once else "--inetd" if opts.inetd else "a wrapped command"
        error(f"--workers cannot be used with {what}")
    return {
        "daemon": opts.daemon,
        "pid_file": _absolute(opts.pid_file),
        "wrap_mode": opts.wrap_mode,
        "listen_fd": opts.listen_fd,
        "metrics_path": opts.metrics_path,
        "health_path": opts.health_path,
        "stats_interval": float(opts.stats_interval),
        "log_format": opts.log_format,
        "drain_timeout": float(opts.drain_timeout),
        "response_headers": tuple(opts.response_header or ()),
        "workers": opts.workers,
    }


def _admin(opts: argparse.Namespace, error: Error) -> dict[str, Any]:
    """``--admin-path`` and its access rules (issue #21, docs/operations.rst)."""
    if not opts.admin_path:
        for used, name in ((opts.admin_auth_source, "--admin-auth-source"),
                           (opts.admin_allow, "--admin-allow"),
                           (opts.admin_show_tokens, "--admin-show-tokens")):
            if used:
                error(f"You must use --admin-path to use {name}")
        return {}
    # Behind a reverse proxy on the same host every request comes from loopback, so
    # the peer address alone never opens the API: credentials are required.
    if not opts.admin_auth_source or ":" not in opts.admin_auth_source:
        error("--admin-path needs --admin-auth-source USER:PASSWORD")
    if opts.admin_path in (opts.metrics_path, opts.health_path):
        error("--admin-path must differ from --metrics-path and --health-path")
    admin = {
        "admin_path": opts.admin_path.rstrip("/") or "/",
        "admin_auth": opts.admin_auth_source,
        "admin_show_tokens": opts.admin_show_tokens,
    }
    if opts.admin_allow:
        admin["admin_allow"] = tuple(net for nets in opts.admin_allow for net in nets)
    return admin
