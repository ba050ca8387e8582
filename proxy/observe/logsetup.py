"""Root logging for the command: stderr, ``--log-file`` and ``--syslog`` (spec §3.1, §3.6).

Only the command (``cli``, ``runner``) calls this; library code logs through module loggers
and never configures. Every handler formats records as bare ``%(message)s``.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from proxy.observe import jsonlog
from proxy.settings import LogSettings, Settings

log = logging.getLogger("proxy.logsetup")

FORMAT = "%(message)s"
#: Syslog facilities (RFC 5424 §6.2.1): websockify uses daemon with ``--daemon`` (§3.6).
FACILITY_USER = 1
FACILITY_DAEMON = 3
IDENT = "websockify"
MAX_IDENT = 24  # websockify truncates the ident for old syslog daemons
MAX_HOSTNAME = 255
#: The formats of websockify's syslog handler, verbatim (spec §3.6).
RFC5424_HEAD = "<{pri}>1 {timestamp} {hostname} {ident} {pid} - - "
LEGACY_HEAD = "<{pri}>{ident}[{pid}]: "
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC, whole seconds

#: Handlers added by ``configure``, removed (and closed) by the next call.
_installed: list[logging.Handler] = []


def severity(levelno: int) -> int:
    """RFC 5424 severity of a logging level: ERROR 3, WARNING 4, INFO 6, DEBUG 7."""
    for threshold, value in ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                             (logging.INFO, 6)):
        if levelno >= threshold:
            return value
    return 7


def format_syslog(text: str, levelno: int, *, facility: int, legacy: bool, timestamp: float,
                  hostname: str, pid: int, ident: str = IDENT, stream: bool = False) -> bytes:
    """One syslog message as websockify's handler builds it (spec §3.6).

    Args:
        text: the formatted log message; newlines become spaces.
        timestamp: seconds since the epoch (printed in UTC).
        stream: for a stream socket, which needs a ``\\n`` terminator.
    """
    head = (LEGACY_HEAD if legacy else RFC5424_HEAD).format(
        pri=facility * 8 + severity(levelno),
        timestamp=time.strftime(TIMESTAMP_FORMAT, time.gmtime(timestamp)),
        hostname=hostname[:MAX_HOSTNAME],
        ident=ident[:MAX_IDENT],
        pid=pid,
    )
    message = head.encode("ascii", "ignore")
    text = text.replace("\n", " ")
    try:
        message += text.encode("ascii")
    except UnicodeEncodeError:
        message += text.encode("utf-8-sig")  # UTF-8 with BOM, as RFC 5424 §6.4 asks
    return message + b"\n" if stream else message


class SyslogHandler(logging.Handler):
    """websockify's syslog output: UDP to ``(host, port)`` or a Unix socket path.

    A Unix path is tried as a datagram socket, then as a stream socket (messages then end
    with ``\\n``). Sending never raises into the caller: a failed send is retried once on a
    new connection, then the record is dropped (a log line must not kill a session).
    """

    def __init__(self, address: tuple[str, int] | str, *, facility: int = FACILITY_USER,
                 legacy: bool = False, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.address = address
        self.facility = facility
        self.legacy = legacy
        self.clock = clock
        self.hostname = socket.gethostname()
        self.stream = False
        self.socket: socket.socket | None = None
        self._sockaddr: tuple[Any, ...] = ()
        if isinstance(address, tuple):
            host, port = address
            family, _, _, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
            self.socket = socket.socket(family, socket.SOCK_DGRAM)
            self._sockaddr = sockaddr

    def connect(self) -> None:
        """Unix path: connect as datagram, else as stream. Raises OSError if neither works."""
        assert isinstance(self.address, str)
        self._close_socket()
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            sock = socket.socket(socket.AF_UNIX, kind)
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                if kind == socket.SOCK_STREAM:
                    raise
                continue
            self.socket, self.stream = sock, kind == socket.SOCK_STREAM
            return

    def _close_socket(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def format_record(self, record: logging.LogRecord) -> bytes | None:
        text = self.format(record)
        if not text:
            return None  # websockify sends nothing for an empty message
        return format_syslog(text, record.levelno, facility=self.facility, legacy=self.legacy,
                             timestamp=self.clock(), hostname=self.hostname, pid=os.getpid(),
                             stream=self.stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if isinstance(self.address, tuple):
                message = self.format_record(record)
                if message is not None and self.socket is not None:
                    self.socket.sendto(message, self._sockaddr)
                return
            self._emit_unix(record)
        except Exception:
            self.handleError(record)

    def _emit_unix(self, record: logging.LogRecord) -> None:
        for attempt in range(2):
            try:
                if self.socket is None:
                    self.connect()
                message = self.format_record(record)  # after connect: stream or not
                if message is None:
                    return
                assert self.socket is not None
                self.socket.sendall(message)
                return
            except OSError:
                self._close_socket()  # e.g. syslogd restarted: reconnect once
                if attempt:
                    raise

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop the record quietly: no traceback on stderr for every line syslog misses."""

    def close(self) -> None:
        self.acquire()
        try:
            self._close_socket()
        finally:
            self.release()
        super().close()


#: The mode of a log file we create, whatever the umask (#15 Reliability 2 §3).
LOG_FILE_MODE = 0o640
#: At most one ``stat()`` of the log file's path per this many seconds (#16 §2).
ROTATION_CHECK = 1.0  # seconds


def _open_log_file(path: str, flags: int) -> int:
    """``open()``'s opener: a new file gets ``LOG_FILE_MODE`` (under umask 0 it would be
    0666, readable and writable by every user); an existing file's mode is left alone."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, LOG_FILE_MODE)
    except FileExistsError:
        return os.open(path, flags & ~os.O_CREAT)
    try:
        os.fchmod(fd, LOG_FILE_MODE)  # the umask may have taken bits away
    except OSError:
        os.close(fd)
        raise
    return fd


class ReopenableFileHandler(logging.FileHandler):
    """``--log-file``: append mode; reopens the path when the file was renamed or removed.

    Like ``logging.handlers.WatchedFileHandler``, it compares the path's inode with the open
    file's, but at most once per ``ROTATION_CHECK`` seconds rather than per record, so
    logrotate's default ``create`` mode works without a signal (#16 Operations 2 §2).
    ``reopen()`` does it at once (SIGHUP).
    """

    def __init__(self, path: str) -> None:
        super().__init__(path, mode="a", encoding="utf-8", errors="backslashreplace")
        self._failing = False  # a write failed (disk full, ...) and was reported
        self._next_check = time.monotonic() + ROTATION_CHECK

    def _open(self) -> io.TextIOWrapper:
        return open(self.baseFilename, "a", encoding=self.encoding, errors=self.errors,
                    opener=_open_log_file)

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        if now >= self._next_check:  # under the handler's lock (Handler.handle)
            self._next_check = now + ROTATION_CHECK
            if self._moved():
                try:
                    self.reopen()
                except OSError:
                    pass  # e.g. the directory went away: keep the old file, check again later
        super().emit(record)

    def _moved(self) -> bool:
        """Whether the path no longer names the open file (renamed, removed, replaced)."""
        if self.stream is None:
            return False
        try:
            path = os.stat(self.baseFilename)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            current = os.fstat(self.stream.fileno())
        except (OSError, ValueError):
            return True
        return (path.st_dev, path.st_ino) != (current.st_dev, current.st_ino)

    def handleError(self, record: logging.LogRecord) -> None:
        """A failing ``--log-file`` (ENOSPC, EIO): one line on stderr, not a traceback per
        record; the records it cannot take are dropped (reported again after a reopen)."""
        if self._failing:
            return
        self._failing = True
        exc = sys.exc_info()[1]
        try:
            sys.stderr.write(_stderr_line(f"cannot write to log file {self.baseFilename}: "
                                          f"{exc}; dropping its records"))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def reopen(self) -> None:
        """Open the path again (a new file if it was renamed), then close the old file.

        Raises:
            OSError: the path cannot be opened; the old file stays in use.
        """
        stream = self._open()
        self.acquire()
        try:
            old, self.stream = self.stream, stream
        finally:
            self.release()
        self._failing = False
        if old is not None:
            old.close()


#: ``--log-format json`` is in effect (``configure``): notes written past logging are JSON.
_json_lines = False


def _stderr_line(text: str) -> str:
    """A line written straight to stderr (not through a handler), in the log format."""
    if not _json_lines:
        return text + "\n"
    return jsonlog.dumps({"time": jsonlog.iso_time(time.time()), "level": "error",
                          "logger": "proxy.logsetup", "message": text}) + "\n"


def syslog_address(value: str) -> tuple[str, int] | str:
    """``host:port`` (split at the last colon, as websockify) or a Unix socket path."""
    if ":" in value:
        host, port = value.rsplit(":", 1)
        return host, int(port)
    return value


def configure(settings: Settings, *, daemon: bool | None = None) -> None:
    """Install the root handlers ``settings`` asks for; DEBUG with ``-v``, else INFO.

    stderr is always on (spec §3.1); ``--log-file`` and ``--syslog`` are added to it.

    Args:
        daemon: syslog facility ``daemon`` instead of ``user`` (spec §3.6); None reads
            ``settings.daemon``.
    """
    configure_logs(settings.logging, daemon=settings.daemon if daemon is None else daemon)


def configure_logs(logs: LogSettings, *, daemon: bool = False) -> None:
    """``configure`` for a command without a whole ``Settings``: ``websockify-client``
    logs exactly as the server does (issue #20 §2).

    Raises:
        OSError: the ``--log-file`` cannot be opened (the caller reports it in one line).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler in _installed:
            handler.close()
    _installed.clear()
    # --log-format json: every line is JSON, the banner and errors too (issue #16).
    global _json_lines
    _json_lines = logs.log_format == "json"
    formatter = jsonlog.JSONFormatter() if _json_lines else logging.Formatter(FORMAT)
    if _json_lines:
        jsonlog.route_stray_output()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logs.log_file:
        handlers.append(ReopenableFileHandler(logs.log_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
        _installed.append(handler)
    root.setLevel(logging.DEBUG if logs.verbose else logging.INFO)
    if logs.syslog:
        _add_syslog(root, logs.syslog, logs.legacy_syslog,
                    FACILITY_DAEMON if daemon else FACILITY_USER, formatter)


def _add_syslog(root: logging.Logger, value: str, legacy: bool, facility: int,
                formatter: logging.Formatter) -> None:
    try:
        handler = SyslogHandler(syslog_address(value), facility=facility, legacy=legacy)
    except OSError as exc:  # the host does not resolve
        log.warning("syslog: cannot use %s: %s", value, exc)
        return
    if isinstance(handler.address, str):
        try:
            handler.connect()
        except OSError as exc:
            # Keep the handler: it reconnects per record once the socket exists.
            log.warning("syslog: cannot connect to %s: %s", value, exc)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    _installed.append(handler)


def reopen() -> list[str]:
    """Reopen every ``--log-file`` (SIGHUP); the paths reopened (the caller logs them).

    A path that cannot be opened is reported here, and its old file stays in use.
    """
    reopened = []
    for handler in list(_installed):
        if isinstance(handler, ReopenableFileHandler):
            try:
                handler.reopen()
            except OSError as exc:
                log.warning("cannot reopen log file %s: %s", handler.baseFilename, exc)
            else:
                reopened.append(handler.baseFilename)
    return reopened


def log_file_fds() -> list[int]:
    """File descriptors of the ``--log-file`` handlers (``--daemon`` keeps them open, §7.5)."""
    return [handler.stream.fileno() for handler in _installed
            if isinstance(handler, ReopenableFileHandler) and handler.stream is not None]
