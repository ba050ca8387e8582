"""Root handlers, ``--log-file`` reopening and the syslog formats (proxy/observe/logsetup.py)."""

from __future__ import annotations

import calendar
import logging
import os
import socket
from pathlib import Path

import pytest

from proxy.observe import logsetup
from proxy.observe.logsetup import (FACILITY_DAEMON, FACILITY_USER, SyslogHandler, format_syslog,
                                    syslog_address)
from proxy.settings import Settings
from tests.conftest import TIMEOUT

#: 2026-11-24T19:52:00Z, the timestamp of spec §3.6's example.
T = float(calendar.timegm((2026, 11, 24, 19, 52, 0)))


def fmt(text: str, level: int = logging.INFO, **kw: object) -> bytes:
    args: dict[str, object] = {"facility": FACILITY_USER, "legacy": False, "timestamp": T,
                               "hostname": "host", "pid": 3000}
    args.update(kw)
    return format_syslog(text, level, **args)  # type: ignore[arg-type]


def test_rfc5424_format_is_websockifys() -> None:
    """spec §3.6: ``<14>1 2026-11-24T19:52:00Z <hostname> websockify <pid> - - <msg>``."""
    assert fmt("WebSocket server settings:") == (
        b"<14>1 2026-11-24T19:52:00Z host websockify 3000 - - WebSocket server settings:")


def test_legacy_format_is_websockifys() -> None:
    """spec §3.6, both observed lines (INFO <14>, DEBUG <15>)."""
    assert fmt("WebSocket server settings:", legacy=True) == (
        b"<14>websockify[3000]: WebSocket server settings:")
    assert fmt("127.0.0.1: new handler Process", logging.DEBUG, legacy=True) == (
        b"<15>websockify[3000]: 127.0.0.1: new handler Process")


@pytest.mark.parametrize(
    ("level", "facility", "pri"),
    [(logging.DEBUG, FACILITY_USER, b"<15>"), (logging.INFO, FACILITY_USER, b"<14>"),
     (logging.WARNING, FACILITY_USER, b"<12>"), (logging.ERROR, FACILITY_USER, b"<11>"),
     (logging.CRITICAL, FACILITY_USER, b"<10>"), (logging.INFO, FACILITY_DAEMON, b"<30>"),
     (logging.DEBUG, FACILITY_DAEMON, b"<31>")],
)
def test_pri_is_facility_times_8_plus_severity(level: int, facility: int, pri: bytes) -> None:
    assert fmt("m", level, facility=facility, legacy=True).startswith(pri + b"websockify[")


def test_newlines_become_spaces_and_stream_sockets_get_a_terminator() -> None:
    assert fmt("a\nb\nc", legacy=True) == b"<14>websockify[3000]: a b c"
    assert fmt("a\nb", legacy=True, stream=True) == b"<14>websockify[3000]: a b\n"


def test_non_ascii_text_is_utf8_with_a_bom() -> None:
    """ASCII when possible, else UTF-8 with BOM (RFC 5424 §6.4), as websockify."""
    assert fmt("Token 'é' not found", legacy=True) == (
        b"<14>websockify[3000]: \xef\xbb\xbfToken '\xc3\xa9' not found")


def test_ident_and_hostname_are_truncated() -> None:
    out = fmt("m", ident="x" * 30, hostname="h" * 300)
    assert out == (b"<14>1 2026-11-24T19:52:00Z " + b"h" * 255 + b" " + b"x" * 24
                   + b" 3000 - - m")


def test_syslog_address_splits_at_the_last_colon() -> None:
    assert syslog_address("log.example:514") == ("log.example", 514)
    assert syslog_address("/dev/log") == "/dev/log"


def record(msg: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("t", level, __file__, 1, msg, (), None)


def test_the_handler_sends_one_udp_datagram_per_record() -> None:
    """A real UDP listener on 127.0.0.1 receives the datagram, no trailing newline."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(TIMEOUT)
        handler = SyslogHandler(listener.getsockname(), clock=lambda: T)
        handler.hostname = "host"
        try:
            handler.handle(record("hello\nworld"))
            data = listener.recv(4096)
        finally:
            handler.close()
    pid = os.getpid()
    assert data == f"<14>1 2026-11-24T19:52:00Z host websockify {pid} - - hello world".encode()


def test_the_handler_uses_a_unix_datagram_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "d.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(TIMEOUT)
        handler = SyslogHandler(path, legacy=True)
        try:
            handler.connect()
            handler.handle(record("dgram", logging.WARNING))
            data = listener.recv(4096)
        finally:
            handler.close()
    assert not handler.stream
    assert data == f"<12>websockify[{os.getpid()}]: dgram".encode()


def test_the_handler_falls_back_to_a_unix_stream_socket(tmp_path: Path) -> None:
    """A stream listener (e.g. syslog-ng's unix-stream): messages end with a newline."""
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(TIMEOUT)
        handler = SyslogHandler(path, legacy=True)
        try:
            handler.connect()
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                handler.handle(record("one"))
                handler.handle(record("two"))
                data = b""
                while data.count(b"\n") < 2:
                    chunk = conn.recv(4096)
                    assert chunk, data
                    data += chunk
        finally:
            handler.close()
    pid = os.getpid()
    assert handler.stream
    assert data == f"<14>websockify[{pid}]: one\n<14>websockify[{pid}]: two\n".encode()


def test_a_failing_syslog_never_raises_nor_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No socket at the path: the record is dropped quietly (the caller goes on)."""
    handler = SyslogHandler(str(tmp_path / "missing.sock"))
    try:
        handler.handle(record("lost"))
    finally:
        handler.close()
    assert capsys.readouterr() == ("", "")


# -- configure / --log-file ------------------------------------------------------------------


def test_log_file_appends_and_reopens_after_a_rename(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same lines as stderr, appended; after rename + reopen, a new file at the path."""
    path = tmp_path / "ws.log"
    path.write_text("old line\n")
    logsetup.configure(Settings(log_file=str(path)))
    log = logging.getLogger("proxy.test")
    log.info("first")
    log.debug("hidden without -v")
    path.rename(tmp_path / "ws.log.1")
    assert logsetup.reopen() == [str(path)]  # the runner's SIGHUP line names it
    log.info("second")
    assert (tmp_path / "ws.log.1").read_text() == "old line\nfirst\n"
    assert path.read_text() == "second\n"
    assert capsys.readouterr().err == "first\nsecond\n"
    assert logsetup.log_file_fds() and all(fd > 2 for fd in logsetup.log_file_fds())


def test_verbose_lets_debug_through(tmp_path: Path, restore_logging: None,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(Settings(verbose=True))
    logging.getLogger("proxy.test").debug("detail")
    assert capsys.readouterr().err == "detail\n"
    assert logsetup.log_file_fds() == []


def test_configure_adds_syslog_with_the_daemon_facility(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--syslog host:port``: stderr stays on and each record is also a datagram."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        logsetup.configure(Settings(syslog=f"127.0.0.1:{port}", legacy_syslog=True),
                           daemon=True)
        logging.getLogger("proxy.test").info("to both")
        data = listener.recv(4096)
        logsetup.configure(Settings())  # closes the syslog socket
    assert data == f"<30>websockify[{os.getpid()}]: to both".encode()
    assert capsys.readouterr().err == "to both\n"


def test_an_unreachable_syslog_socket_is_reported_once(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logsetup.configure(Settings(syslog=str(tmp_path / "none.sock")))
    logging.getLogger("proxy.test").info("still on stderr")
    err = capsys.readouterr().err
    assert err.startswith(f"syslog: cannot connect to {tmp_path / 'none.sock'}: ")
    assert err.endswith("\nstill on stderr\n") and err.count("\n") == 2


def test_a_failed_reopen_keeps_the_old_file_and_says_why(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The directory vanished: a warning, and lines keep going to the open file."""
    (tmp_path / "d").mkdir()
    logsetup.configure(Settings(log_file=str(tmp_path / "d" / "ws.log")))
    (tmp_path / "d").rename(tmp_path / "moved")
    logsetup.reopen()
    logging.getLogger("proxy.test").info("after")
    assert (tmp_path / "moved" / "ws.log").read_text() == (
        f"cannot reopen log file {tmp_path}/d/ws.log: [Errno 2] No such file or directory: "
        f"'{tmp_path}/d/ws.log'\nafter\n")
    assert not (tmp_path / "d").exists()
    capsys.readouterr()
