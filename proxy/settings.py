"""Immutable settings shared by every connection; built by ``cli`` (or an embedding program).

Pure: no I/O here. Nothing per-connection may live in ``Settings`` or on the server object
(websockify stored token targets on its server, a race under threads; STYLE.md §8.1 rule 3).

``Settings`` is built from flat keywords, one per option (``Settings(listen_host=...,
target_port=5900)``, as embedding programs and ``proxy.process.configure`` do), and groups
them into frozen parts for the code that needs one area (issue #17 §2): ``settings.limits``
is what the relay is given, ``settings.tls`` what the TLS contexts are built from,
``settings.logging`` what the log handlers are installed from.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

#: websockify waits 3 s for the first byte of a connection (spec §4.1 step 2).
FIRST_BYTE_TIMEOUT = 3.0  # seconds
#: Bound on the whole HTTP request after the first byte; websockify has none (§13.8).
REQUEST_TIMEOUT = 10.0  # seconds
#: Bound on connecting to the target; websockify uses the OS default (~2 min, §4.3).
CONNECT_TIMEOUT = 10.0  # seconds
#: How long a closing connection may take to flush and exchange Close frames.
CLOSE_TIMEOUT = 5.0  # seconds
#: ``--stall-timeout``: how long a peer may accept no byte of what is queued for it before
#: the session ends (issue #15); websockify has no such bound (its process blocks in send).
STALL_TIMEOUT = 120.0  # seconds
#: Largest WebSocket message accepted from a client (close 1009 beyond it).
MAX_MESSAGE_SIZE = 64 * 1024 * 1024  # bytes
#: Per-direction buffer level at which the relay stops reading the other side.
HIGH_WATER = 256 * 1024  # bytes
#: Size of one recv(); each target read becomes one WebSocket frame (spec §5.2). websockify
#: reads 64 KiB; 256 KiB took target→client from 0.96× to 1.14× its rate and client→target
#: from 1.12× to 1.24× (scripts/bench, 2026-11-26, docs/benchmarks.rst); buffers stay
#: bounded by high_water + recv_size per direction.
RECV_SIZE = 256 * 1024  # bytes
#: Largest HTTP request head (request line and headers) accepted; 431 beyond it.
MAX_REQUEST_HEAD = 64 * 1024  # bytes; http.server also caps one line at 64 KiB, 100 headers
#: websockify's ``--cert`` default, relative to the working directory at start (§3.2).
DEFAULT_CERT = "self.pem"


@dataclass(frozen=True)
class Target:
    """Where one connection goes: TCP ``host:port`` or a Unix socket path."""

    host: str = ""
    port: int = 0
    unix_socket: str | None = None
    #: The port as a token plugin returned it (a str stays a str), which auth plugins are
    #: given as websockify gives it (#18); None for the configured target.
    given_port: int | str | bytes | None = field(default=None, compare=False)
    #: A server parked under this ID by ``--reverse-listen`` (issue #20 §1), not a dial.
    repeater_id: str | None = None

    @property
    def display(self) -> str:
        """As the logs name it: ``host:port`` or the socket path."""
        if self.repeater_id is not None:
            return f"repeater ID {self.repeater_id or '(asked)'}"
        return self.unix_socket if self.unix_socket else f"{self.host}:{self.port}"


class ReplyFrames(enum.Enum):
    """The frame type that carries the target's bytes to the client (``--reply-frames``)."""

    #: Binary frames, as websockify (spec §5.2).
    BINARY = "binary"
    #: Text frames; a read that is not UTF-8 goes as a binary frame (``proxy.protocol.stream``).
    TEXT = "text"
    #: The type of the client's last data message (binary until the first one).
    MIRROR = "mirror"


class TextFrames(enum.Enum):
    """What to do with text messages from the client (issue #3; websockify §13.1)."""

    #: Forward each complete, valid UTF-8 text message to the target.
    ACCEPT = "accept"
    #: websockify's behaviour: close 1003 "Unsupported: Text frames are not supported".
    REJECT = "reject"


@dataclass(frozen=True)
class Limits:
    """Bounds of one relay (``settings.limits``); the defaults are the constants above."""

    high_water: int = HIGH_WATER  # bytes per direction
    recv_size: int = RECV_SIZE  # bytes per recv()
    heartbeat: float = 0.0  # seconds between pings; 0 = off
    close_timeout: float = CLOSE_TIMEOUT  # seconds to flush and exchange Close frames
    idle_timeout: float = 0.0  # seconds without data either way before close 1000; 0 = off
    session_time: float = 0.0  # seconds after the start before close 1001; 0 = off
    heartbeat_timeout: float = 0.0  # seconds a ping may stay unanswered (1011); 0 = off
    stall_timeout: float = STALL_TIMEOUT  # seconds a peer may accept nothing queued; 0 = off

    @property
    def ping_interval(self) -> float:
        """``heartbeat``, or half the heartbeat timeout when only that is set; 0 = no pings."""
        if self.heartbeat > 0:
            return self.heartbeat
        return self.heartbeat_timeout / 2


@dataclass(frozen=True)
class TlsSettings:
    """The TLS options (``settings.tls``): field for field those of ``Settings``."""

    cert: str | None = None
    cert_required: bool = False
    key: str | None = None
    key_password: str | None = None
    ssl_only: bool = False
    ssl_version: str = "default"
    ssl_ciphers: str | None = None
    verify_client: bool = False
    cafile: str | None = None
    ssl_target: bool = False
    ssl_target_cafile: str | None = None
    ssl_target_no_verify: bool = False


@dataclass(frozen=True)
class LogSettings:
    """Where and how the process logs (``settings.logging``): as in ``Settings``."""

    verbose: bool = False
    log_file: str | None = None
    syslog: str | None = None
    legacy_syslog: bool = False
    log_format: str = "classic"


@dataclass(frozen=True)
class Settings:
    """Everything the server and a connection need; ``proxy.process.cli`` maps options onto it.

    Paths are absolute (``cli`` resolves them at start, so nothing depends on the
    working directory later, spec §13.14).
    """

    listen_host: str = ""
    listen_port: int = 0
    #: ``--unix-listen``: path of a Unix stream socket to listen on instead of TCP.
    unix_listen: str | None = None
    unix_listen_mode: int = 0o600
    #: ``--inetd``: fd 0 is an already listening socket.
    inetd: bool = False
    target_host: str = ""
    target_port: int = 0
    #: ``--unix-target``: path of a Unix stream socket to connect to instead of TCP.
    unix_target: str | None = None
    #: Token plugin name and source (spec §8); ``--target-config`` is mapped onto these.
    token_plugin: str | None = None
    token_source: str | None = None
    host_token: bool = False
    #: Close silently on a missing/unknown token, as websockify does (default: HTTP 400/404).
    silent_token_errors: bool = False
    #: ``--token-from``: "query" (websockify), "path", "cookie:NAME" or "header:NAME".
    token_from: str = "query"
    #: ``--connect-before-upgrade``: connect the target before the 101 (502/504 on failure).
    connect_before_upgrade: bool = False
    #: ``--trusted-proxy``: peers whose X-Forwarded-For/Forwarded name the client (ip_network).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    #: ``--target-proxy-protocol``: send a PROXY protocol v1 header to the target first.
    target_proxy_protocol: bool = False
    auth_plugin: str | None = None
    auth_source: str | None = None
    #: ``--web``: absolute directory of static files served to plain GET/HEAD (spec §4.5).
    web: str | None = None
    #: ``--web-auth``: run the auth plugin before serving files and built-in pages.
    web_auth: bool = False
    #: ``--file-only``: directory listings are 404 "Not Found" (spec §4.5).
    file_only: bool = False
    #: ``--web-follow-symlinks``: serve a symlink under DIR wherever it leads, as
    #: websockify does; by default only links resolving inside DIR (#15 Reliability 2).
    web_follow_symlinks: bool = False
    #: ``--diagnostics``: URL path prefix (``/.../``) of the diagnostics page; None = off.
    diagnostics_path: str | None = None
    #: ``--cert``: PEM certificate chain (and the key when no ``--key``); None = no TLS.
    cert: str | None = None
    #: The certificate must load (``--cert``/``--key`` given explicitly); otherwise a missing
    #: default ``self.pem`` just means plain connections only (spec §3.2).
    cert_required: bool = False
    key: str | None = None
    key_password: str | None = None
    #: ``--ssl-only``: refuse plain (ws://) connections (spec §7.2).
    ssl_only: bool = False
    #: ``--ssl-version``: "default", "tlsv1_1", "tlsv1_2" or "tlsv1_3" (minimum version).
    ssl_version: str = "default"
    ssl_ciphers: str | None = None
    #: ``--verify-client``: require a client certificate signed by ``cafile`` (or system CAs).
    verify_client: bool = False
    cafile: str | None = None
    #: ``--ssl-target``: TLS to the target, verified against the system CAs (spec §7.6),
    #: or only against ``ssl_target_cafile``, or not at all with ``ssl_target_no_verify``.
    ssl_target: bool = False
    ssl_target_cafile: str | None = None
    ssl_target_no_verify: bool = False
    #: The command after ``--`` (wrap mode, spec §7.9); empty = no wrap.
    wrap_cmd: tuple[str, ...] = ()
    verbose: bool = False
    prefer_ipv6: bool = False
    text_frames: TextFrames = TextFrames.ACCEPT
    heartbeat: float = 0.0  # seconds; 0 = off
    #: ``--traffic``: websockify's per-event markers on stdout (spec §3.4).
    traffic: bool = False
    #: ``--traffic-dump``: log a hex+ASCII dump of each read, at most this many bytes; 0 = off.
    traffic_dump: int = 0
    #: ``--record``: absolute path prefix of per-session recordings (spec §7.4).
    record: str | None = None
    log_file: str | None = None
    #: ``--syslog``: ``host:port`` (UDP) or a socket path (spec §3.6).
    syslog: str | None = None
    legacy_syslog: bool = False
    run_once: bool = False
    timeout: float = 0.0  # seconds after start to stop accepting; 0 = off
    idle_timeout: float = 0.0  # seconds without a live connection before exit; 0 = off
    first_byte_timeout: float = FIRST_BYTE_TIMEOUT
    request_timeout: float = REQUEST_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    close_timeout: float = CLOSE_TIMEOUT
    max_message_size: int = MAX_MESSAGE_SIZE
    high_water: int = HIGH_WATER
    recv_size: int = RECV_SIZE
    #: ``--reply-frames``: frame type of target data sent to the client.
    reply_frames: ReplyFrames = ReplyFrames.BINARY
    #: ``--compression``: accept permessage-deflate when the client offers it.
    compression: bool = False
    #: ``--max-connections``: live connections beyond which requests get 503; 0 = automatic
    #: (``proxy.access.admission.default_max_connections``, below the open-file limit).
    max_connections: int = 0
    #: ``--max-connections-per-ip``: live connections per peer address; 0 = no limit.
    max_connections_per_ip: int = 0
    #: ``--conn-idle-timeout``: close 1000 after this long without data either way; 0 = off.
    conn_idle_timeout: float = 0.0  # seconds
    #: ``--max-session-time``: close 1001 this long after the upgrade; 0 = off.
    max_session_time: float = 0.0  # seconds
    #: ``--heartbeat-timeout``: close 1011 when pings stay unanswered this long; 0 = off.
    heartbeat_timeout: float = 0.0  # seconds
    #: ``--stall-timeout``: end a session whose peer accepts nothing this long; 0 = off.
    stall_timeout: float = STALL_TIMEOUT  # seconds
    #: ``--max-request-head``: largest request line plus headers (431 beyond it).
    max_request_head: int = MAX_REQUEST_HEAD
    # -- operations (issue 10) --
    #: ``--daemon``: detach after binding (spec §7.5); syslog facility ``daemon``.
    daemon: bool = False
    #: ``--pid-file``: absolute path written with our pid once serving (removed at exit).
    pid_file: str | None = None
    #: ``--wrap-mode``: "exit", "ignore" or "respawn" (spec §7.9).
    wrap_mode: str = "exit"
    #: ``--listen-fd`` or systemd socket activation: an inherited listening socket.
    listen_fd: int | None = None
    #: ``--metrics-path``/``--health-path``: URL paths of the built-in pages; None = off.
    metrics_path: str | None = None
    health_path: str | None = None
    #: ``--stats-interval``: log the counters every this many seconds; 0 = off.
    stats_interval: float = 0.0  # seconds
    #: ``--log-format``: "classic" lines, "json" records per connection instead, or "both".
    log_format: str = "classic"
    #: ``--drain-timeout``: on SIGTERM, let sessions run this long before closing 1001.
    drain_timeout: float = 0.0  # seconds
    #: ``--response-header``: extra (name, value) headers on every HTTP response and the 101.
    response_headers: tuple[tuple[str, str], ...] = ()
    #: ``--workers``: processes serving the one listening socket (``proxy.process.workers``).
    workers: int = 1
    # -- live sessions (issue #21) --
    #: ``--admin-path``: URL path of the sessions API; None = off.
    admin_path: str | None = None
    #: ``--admin-auth-source``: ``user:password`` for Basic auth (required with admin_path).
    admin_auth: str | None = None
    #: ``--admin-allow``: TCP peers that may use the API (never a forwarded address).
    admin_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    #: ``--admin-show-tokens``: list whole tokens (else their first 4 characters).
    admin_show_tokens: bool = False
    # -- repeater (issue #20 §1; proxy.transport.parking) --
    #: ``--reverse-listen``: (host, port) addresses where VNC servers dial in.
    reverse_listen: tuple[tuple[str, int], ...] = ()
    #: ``--reverse-wait``: how long a browser waits for its server to dial in.
    reverse_wait: float = 5.0  # seconds
    reverse_max_parked: int = 100
    reverse_max_parked_per_ip: int = 10
    #: ``--reverse-allow``: who may dial in; empty = anyone.
    reverse_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # -- the parts (issue #17 §2), derived from the fields above in __post_init__ --
    limits: Limits = field(init=False, repr=False, compare=False)
    tls: TlsSettings = field(init=False, repr=False, compare=False)
    logging: LogSettings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived, not stored twice by the caller: flat keywords and dataclasses.replace()
        # keep working, and a part can never disagree with the fields it comes from.
        limits = Limits(self.high_water, self.recv_size, self.heartbeat, self.close_timeout,
                        idle_timeout=self.conn_idle_timeout, session_time=self.max_session_time,
                        heartbeat_timeout=self.heartbeat_timeout,
                        stall_timeout=self.stall_timeout)
        object.__setattr__(self, "limits", limits)
        tls = TlsSettings(self.cert, self.cert_required, self.key, self.key_password,
                          self.ssl_only, self.ssl_version, self.ssl_ciphers, self.verify_client,
                          self.cafile, self.ssl_target, self.ssl_target_cafile,
                          self.ssl_target_no_verify)
        object.__setattr__(self, "tls", tls)
        logs = LogSettings(self.verbose, self.log_file, self.syslog, self.legacy_syslog,
                           self.log_format)
        object.__setattr__(self, "logging", logs)

    @property
    def listen_display(self) -> str:
        """The listen address as websockify prints it (``:6080`` when no host, spec §3.2).

        For ``--unix-listen`` the path (websockify prints ``:None``, §13.20).
        """
        if self.inetd:
            return "inetd"
        if self.listen_fd is not None:
            return f"fd {self.listen_fd}"
        if self.unix_listen:
            return self.unix_listen
        return f"{self.listen_host}:{self.listen_port}"

    @property
    def target(self) -> Target:
        """The configured target (token plugins choose one per connection instead)."""
        return Target(self.target_host, self.target_port, self.unix_target)

    @property
    def target_display(self) -> str:
        """The target as the logs name it: ``host:port`` or the Unix socket path."""
        if self.unix_target:
            return self.unix_target
        return f"{self.target_host}:{self.target_port}"
