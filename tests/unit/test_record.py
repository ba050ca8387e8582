"""The ``--record`` writer (proxy/observe/record.py) and the recording parser
(proxy/observe/replay.py)."""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.observe import replay
from proxy.observe.record import Recorder, escape
from proxy.observe.replay import Entry, RecordingError, parse_recording
from proxy.serve.server import ProxyServer
from proxy.settings import Settings
from tests.conftest import TIMEOUT


def clock(*values: float) -> Callable[[], float]:
    """A clock returning ``values`` in turn (the first is the session start)."""
    it: Iterator[float] = iter(values)
    return lambda: next(it)


def test_a_recording_is_byte_for_byte_websockifys_format(tmp_path: Path) -> None:
    """The example of spec §7.4, produced by driving the tap as the relay does."""
    payload = b"abc\x00\xff'q"
    rec = Recorder(str(tmp_path / "rec"), 5, clock=clock(100.0, 100.001, 100.0035))
    rec.from_client(payload, 1)
    rec.sent_to_target(True)
    rec.from_target(payload)
    rec.sent_to_client(True)
    rec.close()
    expected = (
        "var VNC_frame_data = [\n"
        "'}1}abc\\x00\\xff\\'q',\n"
        "'{3{abc\\x00\\xff\\'q',\n"
        "'EOF'];\n"
    )
    assert (tmp_path / "rec.5").read_bytes() == expected.encode("ascii")


def test_empty_client_reads_are_not_recorded_and_close_is_idempotent(tmp_path: Path) -> None:
    """A read that forwarded nothing (control frame, partial header) writes no entry."""
    with Recorder(str(tmp_path / "r"), 1, clock=clock(0.0, 2.5)) as rec:
        rec.from_client(b"", 0)
        rec.from_target(b"\n\\")
        rec.close()
    rec.from_target(b"late")  # after close: ignored, no error
    assert (tmp_path / "r.1").read_text() == (
        "var VNC_frame_data = [\n'{2500{\\n\\\\',\n'EOF'];\n")


def test_the_recording_is_private_even_with_umask_0(tmp_path: Path) -> None:
    """websockify's --daemon (umask 0) leaves recordings world-writable; ours are 0600."""
    old = os.umask(0)
    try:
        Recorder(str(tmp_path / "p"), 2).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.2").stat().st_mode) == 0o600


def test_opening_is_logged_with_the_full_path(tmp_path: Path) -> None:
    """``opening record file: <FILE>.<n>`` goes through the handler's log_message (§3.3)."""
    lines: list[str] = []
    Recorder(str(tmp_path / "x"), 12, lambda fmt, *a: lines.append(fmt % a)).close()
    assert lines == [f"opening record file: {tmp_path}/x.12"]


def test_an_existing_recording_is_truncated(tmp_path: Path) -> None:
    """websockify opens with "w+": an old file of the same name is replaced."""
    (tmp_path / "t.1").write_text("old content that is longer than the new one" * 10)
    Recorder(str(tmp_path / "t"), 1).close()
    assert (tmp_path / "t.1").read_text() == "var VNC_frame_data = [\n'EOF'];\n"


def test_a_planted_symlink_is_refused_and_its_target_left_intact(tmp_path: Path) -> None:
    """#15 Reliability 2: websockify follows ``PREFIX.N`` -> victim and truncates the victim."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "rec.3").symlink_to(victim)
    with pytest.raises(OSError) as info:
        Recorder(str(tmp_path / "rec"), 3)
    assert str(info.value) == (
        f"[Errno 40] is a symbolic link, not followed: '{tmp_path}/rec.3'")
    assert victim.read_text() == "precious"


def test_a_dangling_symlink_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "rec.1").symlink_to(tmp_path / "created")
    with pytest.raises(OSError):
        Recorder(str(tmp_path / "rec"), 1)
    assert not (tmp_path / "created").exists()


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A planted FIFO with a reader opens; it is still no regular file."""
    fifo = tmp_path / "rec.1"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OSError) as info:
            Recorder(str(tmp_path / "rec"), 1)
    finally:
        os.close(reader)
    assert str(info.value) == (
        f"[Errno 17] is not a regular file, not recorded to: '{tmp_path}/rec.1'")


def test_a_hard_linked_file_is_refused_and_left_intact(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.link(victim, tmp_path / "rec.2")
    with pytest.raises(OSError) as info:
        Recorder(str(tmp_path / "rec"), 2)
    assert str(info.value) == (
        f"[Errno 31] has other hard links, not truncated: '{tmp_path}/rec.2'")
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"plain", "plain"), (b"'", "\\'"), (b"\\", "\\\\"), (b"\t\r\n", "\\t\\r\\n"),
     (b"\x00\x7f\x80\xff", "\\x00\\x7f\\x80\\xff"), (b"\\'", "\\\\\\'")],
)
def test_escape_is_latin1_unicode_escape_with_quotes(data: bytes, text: str) -> None:
    assert escape(data) == text


# -- the parser, on hand-written files in websockify's format ---------------------------------

WEBSOCKIFY_FILE = (
    "var VNC_frame_data = [\n"
    "'}0}RFB 003.008\\n',\n"
    "'{12{it\\'s \\x00\\xff',\n"
    "'}40}back\\\\nslash',\n"
    "'{41{{}braces}{',\n"
    "'}99}',\n"
    "'EOF'];\n"
)


def test_the_parser_reads_websockifys_escapes() -> None:
    """``\\'``, ``\\x00``, ``\\xff``, ``\\n`` and an escaped backslash before ``n``."""
    recording = parse_recording(WEBSOCKIFY_FILE)
    assert recording.complete
    assert recording.entries == [
        Entry(0, True, b"RFB 003.008\n"),
        Entry(12, False, b"it's \x00\xff"),
        Entry(40, True, b"back\\nslash"),
        Entry(41, False, b"{}braces}{"),
        Entry(99, True, b""),
    ]


def test_the_parser_reads_back_what_the_writer_wrote(tmp_path: Path) -> None:
    """Every byte value survives a write/parse round trip."""
    data = bytes(range(256)) + b"''\\\\'"
    with Recorder(str(tmp_path / "rt"), 1, clock=clock(0.0, 0.0, 0.01)) as rec:
        rec.from_client(data, 1)
        rec.from_target(data[::-1])
    recording = parse_recording((tmp_path / "rt.1").read_text())
    assert recording.entries == [Entry(0, True, data), Entry(10, False, data[::-1])]


def test_a_recording_without_eof_is_read_as_incomplete() -> None:
    recording = parse_recording("var VNC_frame_data = [\n'}1}a',\n")
    assert recording.entries == [Entry(1, True, b"a")] and not recording.complete


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: expected 'var VNC_frame_data = ['"),
        ("var x = [\n'EOF'];\n", "line 1:"),
        ("var VNC_frame_data = [\n'}1}abc'\n'EOF'];\n", "line 2: expected"),
        ("var VNC_frame_data = [\n'>1>abc',\n", "line 2: unknown direction '>'"),
        ("var VNC_frame_data = [\n'}x}abc',\n", "line 2: bad time field 'x'"),
        ("var VNC_frame_data = [\n'}12abc',\n", "line 2: bad time field '12abc'"),
        ("var VNC_frame_data = [\n'{1{\\x4',\n", "line 2: bad escape"),
        ("var VNC_frame_data = [\n'{1{\\u0100',\n", "line 2: bad escape"),
        ("var VNC_frame_data = [\n\n'EOF'];\n", "line 2: expected"),
        ("var VNC_frame_data = [\n'EOF'];\n'}1}a',\n", "line 3: text after"),
    ],
)
def test_malformed_recordings_are_rejected_with_the_line(text: str, message: str) -> None:
    with pytest.raises(RecordingError) as info:
        parse_recording(text)
    assert str(info.value).startswith(message)


def test_main_exits_2_with_a_message_on_a_malformed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No traceback: one error line naming the file and the line, exit status 2."""
    bad = tmp_path / "bad.1"
    bad.write_text("var VNC_frame_data = [\n'}1}\\x4',\n")
    with pytest.raises(SystemExit) as info:
        replay.main([str(bad)])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        f"python -m proxy.replay: error: {bad}: not a recording: line 2: bad escape in data: "
        "truncated \\xXX escape\n")


def test_main_exits_2_on_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        replay.main([str(tmp_path / "none")])
    assert info.value.code == 2
    assert "No such file or directory" in capsys.readouterr().err


def test_the_timeline_shows_time_direction_size_and_preview(tmp_path: Path) -> None:
    path = tmp_path / "w.1"
    path.write_text(WEBSOCKIFY_FILE)
    out = io.StringIO()
    assert replay.main([str(path)], out) == 0
    assert out.getvalue().splitlines() == [
        "       time  direction           bytes  preview",
        "     0.000s  client -> target       12  "
        "52 46 42 20 30 30 33 2e 30 30 38 0a              |RFB 003.008.|",
        "     0.012s  client <- target        7  "
        "69 74 27 73 20 00 ff                             |it's ..|",
        "     0.040s  client -> target       11  "
        "62 61 63 6b 5c 6e 73 6c 61 73 68                 |back\\nslash|",
        "     0.041s  client <- target       10  "
        "7b 7d 62 72 61 63 65 73 7d 7b                    |{}braces}{|",
        # an empty entry: 2 + 47 (hex column) + 2 spaces, then the empty ASCII column
        "     0.099s  client -> target        0" + " " * 51 + "||",
        "3 client entries (23 bytes), 2 target entries (17 bytes), 0.099s",
    ]


def test_session_numbers_count_from_1_without_duplicates_across_threads() -> None:
    """``ProxyServer.next_session_id``: websockify's handler_id (spec §4.1), thread-safe."""
    server = ProxyServer(Settings(listen_host="127.0.0.1"))
    ids: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [server.next_session_id() for _ in range(200)]
        with lock:
            ids.extend(mine)

    try:
        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
    finally:
        server.server_close()
    assert sorted(ids) == list(range(1, 1601))
