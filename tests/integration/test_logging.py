"""Logging of the real command: --traffic(-dump), --log-file, --syslog, --record, replay."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend, NeverReadBackend, ScriptedBackend
from tests.support.process import ProxyProcess, clean_env
from tests.support.wsclient import OP_BINARY, WSClient, build_frame
from tests.support.inprocess import wait_for
from tests.support.spectext import LEGEND

pytestmark = pytest.mark.integration

# "127.0.0.1 - - [26/Nov/2026 09:41:07] " (http.server's log_message prefix, spec §3.1)
PREFIX = r"127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\] "
MiB = 1024 * 1024


def stdout_of_length(proxy: ProxyProcess, n: int) -> str:
    """stdout once it holds at least ``n`` characters (markers are flushed one by one)."""
    return wait_for(lambda: out if len(out := proxy.stdout()) >= n else None,
                    f"{n} characters on stdout; have {proxy.stdout()!r}")


def markers(proxy: ProxyProcess) -> str:
    """stdout after the legend (which itself contains "}." and "<.")."""
    out = proxy.stdout()
    if len(out) < len(LEGEND):
        return ""  # the session has not started yet
    assert out.startswith(LEGEND), out[:200]
    return out[len(LEGEND):]


# -- --traffic ---------------------------------------------------------------------------------


def test_traffic_prints_the_legend_then_a_marker_per_send_receive_and_close(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """Round trip: ``}>{<`` (spec §3.5); the client's Close: ``}.`` read, ``<`` echo."""
    proxy = start_proxy(echo_backend.port, "--traffic")
    with WSClient.connect(proxy.port) as ws:
        assert stdout_of_length(proxy, len(LEGEND)) == LEGEND
        ws.send_binary(b"hello")
        assert ws.recv_bytes(5) == b"hello"
        assert stdout_of_length(proxy, len(LEGEND) + 4) == LEGEND + "}>{<"
        ws.close()
        ws.recv_close()
        # The session's end ends its line (#16 Operations 2; websockify leaves it open).
        assert stdout_of_length(proxy, len(LEGEND) + 8) == LEGEND + "}>{<}.<\n"
    assert proxy.stop() == 0
    assert proxy.stdout() == LEGEND + "}>{<}.<\n"


def test_traffic_marks_a_client_read_that_completes_no_message(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """Three bytes of a frame header: ``}.`` and nothing else; the rest: ``}>`` then ``{<``."""
    proxy = start_proxy(echo_backend.port, "--traffic")
    frame = build_frame(OP_BINARY, b"0123456789")
    with WSClient.connect(proxy.port) as ws:
        ws.send_raw(frame[:3])
        assert stdout_of_length(proxy, len(LEGEND) + 2) == LEGEND + "}."
        assert echo_backend.connection().count == 0
        ws.send_raw(frame[3:])
        assert ws.recv_bytes(10) == b"0123456789"
        assert stdout_of_length(proxy, len(LEGEND) + 6) == LEGEND + "}.}>{<"


def test_traffic_marks_a_partial_write_to_the_target_with_dot_greater(
    start_proxy: StartProxy,
) -> None:
    """A target that never reads: a write leaves bytes queued → ``.>`` (the code's marker,
    not the legend's ``>.``, spec §13.21)."""
    with NeverReadBackend() as backend:
        proxy = start_proxy(backend.port, "--traffic")
        with WSClient.connect(proxy.port) as ws:
            frame = build_frame(OP_BINARY, os.urandom(256 * 1024))
            ws.sock.setblocking(False)
            deadline = time.monotonic() + 4 * TIMEOUT
            off = 0
            while ".>" not in markers(proxy):
                assert time.monotonic() < deadline, f"no '.>' in {markers(proxy)[-200:]!r}"
                try:
                    off = (off + ws.sock.send(frame[off:])) % len(frame)
                except BlockingIOError:
                    select.select([], [ws.sock], [], 0.05)
        assert proxy.stdout().startswith(LEGEND + "}") and ">." not in markers(proxy)


def test_traffic_marks_a_partial_write_to_the_client(start_proxy: StartProxy) -> None:
    """A client that does not read while the target sends 16 MiB → ``<.``."""
    with ScriptedBackend(os.urandom(16 * MiB)) as backend:
        proxy = start_proxy(backend.port, "--traffic")
        with WSClient.connect(proxy.port):
            wait_for(lambda: "<." in markers(proxy), "'<.' on stdout", 4 * TIMEOUT)
        assert proxy.stdout().startswith(LEGEND + "{"), markers(proxy)[:20]


# -- --traffic-dump ------------------------------------------------------------------------------


def test_traffic_dump_logs_direction_session_size_and_a_hexdump(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """``--traffic-dump --traffic-dump-bytes 16``: both directions of a 20-byte echo."""
    proxy = start_proxy(echo_backend.port, "--traffic-dump", "--traffic-dump-bytes", "16")
    payload = b"hello world, hello!!"
    with WSClient.connect(proxy.port) as ws:
        ws.send_binary(payload)
        assert ws.recv_bytes(len(payload)) == payload
        proxy.wait_for_log("target -> client")
    dump = "00000000  68 65 6c 6c 6f 20 77 6f  72 6c 64 2c 20 68 65 6c  |hello world, hel|"
    text = proxy.stderr()
    match = re.search(r"^127\.0\.0\.1: session (\d+): client -> target: 20 bytes, "
                      r"first 16 shown\n(.*)\n", text, re.M)
    assert match, text
    assert match.group(2) == dump
    session = match.group(1)
    assert (f"127.0.0.1: session {session}: target -> client: 20 bytes, first 16 shown\n"
            f"{dump}\n") in text
    assert proxy.stdout() == ""  # the dump is a log, not --traffic output


# -- -v and --log-file ---------------------------------------------------------------------------


def test_log_file_gets_the_same_lines_appended_and_reopens_on_sighup(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """Appends to an existing file; after logrotate's rename and SIGHUP, a new file."""
    proxy = start_proxy(echo_backend.port, "-v", "--log-file", "ws.log")
    log = proxy.tmp_path / "ws.log"
    # -v: the readiness probe of ProxyProcess logs the thread version of §3.3's line.
    proxy.wait_for_log("127.0.0.1: new handler Thread")
    first = wait_for(lambda: t if "new handler" in (t := log.read_text()) else None,
                     "the banner in the log file")
    assert first == proxy.stderr()
    assert first.startswith("WebSocket server settings:\n")

    log.rename(proxy.tmp_path / "ws.log.1")
    proxy.send_signal(signal.SIGHUP)
    wait_for(lambda: log.exists() and f"SIGHUP: reloaded log file {log}\n" in log.read_text(),
             "the reopened log file")
    with WSClient.connect(proxy.port) as ws:
        ws.send_binary(b"x")
        assert ws.recv_bytes(1) == b"x"
    new = wait_for(lambda: t if "connecting to:" in (t := log.read_text()) else None,
                   "connection lines in the new file")
    lines = new.splitlines()
    assert lines[0] == f"SIGHUP: reloaded log file {log}"
    assert "127.0.0.1: new handler Thread" in lines
    assert re.search(f"^{PREFIX}127\\.0\\.0\\.1: Plain non-SSL \\(ws://\\) WebSocket "
                     "connection$", new, re.M)
    assert (proxy.tmp_path / "ws.log.1").read_text() == first
    assert proxy.stop() == 0


def test_log_file_keeps_existing_content(start_proxy: StartProxy,
                                         echo_backend: EchoBackend, tmp_path: Path) -> None:
    """Append mode: a line written before the start is still the first line."""
    log = tmp_path / "kept.log"
    log.write_text("previous run\n")
    proxy = start_proxy(echo_backend.port, "--log-file", str(log))
    proxy.wait_for_log("  - proxying from")
    text = wait_for(lambda: t if "proxying from" in (t := log.read_text()) else None, "banner")
    assert text == "previous run\n" + proxy.stderr()


# -- --syslog ------------------------------------------------------------------------------------


def recv_until(sock: socket.socket, needle: bytes) -> list[bytes]:
    """Datagrams up to and including the first containing ``needle``."""
    sock.settimeout(TIMEOUT)
    got: list[bytes] = []
    while not got or needle not in got[-1]:
        got.append(sock.recv(65536))
    return got


def test_syslog_udp_datagrams_use_the_rfc5424_format(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """One datagram per line: ``<14>1 <UTC time> <host> websockify <pid> - - <msg>``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        proxy = start_proxy(echo_backend.port, "--syslog", f"127.0.0.1:{port}")
        got = recv_until(listener, b"proxying from")
    assert proxy.proc is not None
    head = (r"<14>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
            + re.escape(socket.gethostname()[:255]) + f" websockify {proxy.proc.pid} - - ")
    expected = proxy.wait_for_lines(4)[:4]
    assert len(got) == 4
    for datagram, line in zip(got, expected):
        assert re.fullmatch(head.encode() + re.escape(line.encode()), datagram), datagram


def test_legacy_syslog_over_a_unix_datagram_socket(
    start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path
) -> None:
    """``--legacy-syslog``: ``<14>websockify[pid]: msg``; DEBUG lines are ``<15>``."""
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        proxy = start_proxy(echo_backend.port, "-v", "--syslog", str(path), "--legacy-syslog")
        assert proxy.proc is not None
        pid = proxy.proc.pid
        got = recv_until(listener, b"proxying from")
        assert got[0] == f"<14>websockify[{pid}]: WebSocket server settings:".encode()
        assert got[-1] == (f"<14>websockify[{pid}]:   - proxying from 127.0.0.1:{proxy.port} "
                           f"to 127.0.0.1:{echo_backend.port}").encode()
        with WSClient.connect(proxy.port):
            pass
        got = recv_until(listener, b"new handler Thread")
        assert got[-1] == f"<15>websockify[{pid}]: 127.0.0.1: new handler Thread".encode()


# -- --record and replay -------------------------------------------------------------------------


def test_a_recording_that_cannot_be_opened_closes_1011_and_spares_the_server(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """websockify ends such a session with no Close frame (§7.4): ours closes 1011."""
    proxy = start_proxy(echo_backend.port, "--record", "missing-dir/rec")
    with WSClient.connect(proxy.port) as ws:
        close = ws.recv_close()
    assert (close.code, close.reason) == (1011, "Failed to open the recording")
    line = proxy.wait_for_log("handler exception:")
    # The number is the session's; the start-up probe took one (docs/logging.rst).
    assert re.search(f"handler exception: \\[Errno 2\\] No such file or directory: "
                     f"'{re.escape(str(proxy.tmp_path / 'missing-dir' / 'rec'))}\\.\\d+'$",
                     line), line
    assert not echo_backend.connections  # the target was never connected
    (proxy.tmp_path / "missing-dir").mkdir()
    with WSClient.connect(proxy.port) as ws:  # the server goes on
        ws.send_binary(b"now recorded")
        assert ws.recv_bytes(12) == b"now recorded"


def test_a_planted_symlink_recording_closes_1011_and_is_not_followed(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """#15 Reliability 2: websockify truncates what ``PREFIX.N`` points to."""
    proxy = start_proxy(echo_backend.port, "--record", "rec")
    victim = proxy.tmp_path / "victim"
    victim.write_text("precious")
    # The readiness probe was session 1 (docs/logging.rst); plant the next few numbers.
    for n in range(2, 6):
        (proxy.tmp_path / f"rec.{n}").symlink_to(victim)
    with WSClient.connect(proxy.port) as ws:
        close = ws.recv_close()
    assert (close.code, close.reason) == (1011, "Failed to open the recording")
    line = proxy.wait_for_log("handler exception:")
    assert re.search(f"handler exception: \\[Errno 40\\] is a symbolic link, not followed: "
                     f"'{re.escape(str(proxy.tmp_path / 'rec'))}\\.[2-5]'$", line), line
    assert victim.read_text() == "precious"
    assert not echo_backend.connections


def test_record_writes_websockifys_format_and_replay_reads_it(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """spec §7.4's example payload, recorded, printed as a timeline and replayed."""
    proxy = start_proxy(echo_backend.port, "--record", "rec")
    payload = b"abc\x00\xff'q"
    with WSClient.connect(proxy.port) as ws:
        ws.send_binary(payload)
        assert ws.recv_bytes(len(payload)) == payload
        ws.close()
        ws.recv_close()
    files = wait_for(lambda: sorted(proxy.tmp_path.glob("rec.*")), "a recording")
    assert len(files) == 1
    path = files[0]
    text = wait_for(lambda: t if (t := path.read_text()).endswith("'EOF'];\n") else None,
                    "the end of the recording")
    match = re.fullmatch(r"var VNC_frame_data = \[\n"
                         r"'\}(\d+)\}abc\\x00\\xff\\'q',\n"
                         r"'\{(\d+)\{abc\\x00\\xff\\'q',\n"
                         r"'EOF'\];\n", text)
    assert match, text
    assert int(match.group(1)) <= int(match.group(2)) < 10 * TIMEOUT * 1000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The readiness probe of ProxyProcess was connection 1: numbers count every connection.
    session = int(path.name.split(".")[1])
    assert session >= 2
    assert re.search(f"^{PREFIX}opening record file: {re.escape(str(path))}$",
                     proxy.stderr(), re.M)
    check_replay(path, payload)


def run_replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy.replay", *args], capture_output=True,
                          text=True, timeout=6 * TIMEOUT, env=clean_env())


def check_replay(path: Path, payload: bytes) -> None:
    preview = r"61 62 63 00 ff 27 71 +\|abc\.\.'q\|"
    timeline = run_replay(str(path))
    assert timeline.returncode == 0 and timeline.stderr == "", timeline
    lines = timeline.stdout.splitlines()
    assert lines[0] == "       time  direction           bytes  preview"
    assert re.fullmatch(r" +\d+\.\d{3}s  client -> target        7  " + preview, lines[1])
    assert re.fullmatch(r" +\d+\.\d{3}s  client <- target        7  " + preview, lines[2])
    assert re.fullmatch(r"1 client entries \(7 bytes\), 1 target entries \(7 bytes\), "
                        r"\d+\.\d{3}s", lines[3])
    assert len(lines) == 4
    with EchoBackend() as target:
        replayed = run_replay(str(path), "--target", f"127.0.0.1:{target.port}",
                              "--wait", str(TIMEOUT))
        assert target.connection().wait_bytes(len(payload)) == payload
    assert replayed.returncode == 0, replayed
    out = replayed.stdout.splitlines()
    assert re.fullmatch(r" +\d+\.\d{3}s  client -> target        7  " + preview, out[0])
    assert re.fullmatch(r" +\d+\.\d{3}s  client <- target        7  " + preview, out[1])
    assert out[-1] == "sent 7 bytes in 1 entries; target answered 7 bytes (recording: 7)"


def test_replay_reports_a_refused_target_with_status_1(tmp_path: Path) -> None:
    path = tmp_path / "r.1"
    path.write_text("var VNC_frame_data = [\n'}0}hi',\n'EOF'];\n")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        result = run_replay(str(path), "--target", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.startswith(f"replay: cannot connect to 127.0.0.1:{port}: ")
    assert "Traceback" not in result.stderr
