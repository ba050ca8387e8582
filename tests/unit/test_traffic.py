"""``--traffic`` markers, ``--traffic-dump`` text and ``session_tap`` (proxy/observe/traffic.py)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from proxy.settings import Settings
from proxy.observe.traffic import SessionTap, TrafficDump, TrafficMarkers, hexdump, session_tap
from tests.support.spectext import LEGEND


def markers() -> tuple[TrafficMarkers, io.StringIO]:
    out = io.StringIO()
    return TrafficMarkers(lambda: out), out


def test_the_legend_is_printed_verbatim_when_a_session_starts() -> None:
    """Creating the markers tap writes spec §3.4's legend and nothing else."""
    _tap, out = markers()
    assert out.getvalue() == LEGEND
    assert out.getvalue().startswith("\nTraffic Legend:\n")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (lambda t: t.from_client(b"ab", 1), "}"),
        (lambda t: t.from_client(b"ab", 3), "}}}"),
        (lambda t: t.from_client(b"", 0), "}."),
        (lambda t: t.from_client(b"partial", 0), "}."),
        (lambda t: t.from_target(b"x"), "{"),
        (lambda t: t.sent_to_target(True), ">"),
        (lambda t: t.sent_to_target(False), ".>"),  # the code's marker, not the legend's
        (lambda t: t.sent_to_client(True), "<"),
        (lambda t: t.sent_to_client(False), "<."),
    ],
    ids=["message", "3 messages", "control only", "partial", "target read", "target sent",
         "target partial", "client sent", "client partial"],
)
def test_each_relay_event_prints_websockifys_marker(event: object, expected: str) -> None:
    """One relay event → one marker, no newline (spec §3.4 table)."""
    tap, out = markers()
    event(tap)  # type: ignore[operator]
    assert out.getvalue() == LEGEND + expected


def test_the_end_of_a_session_ends_its_line_of_markers() -> None:
    """#16 Operations 2: websockify leaves the line open; the next log line ran into it."""
    tap, out = markers()
    tap.from_client(b"ab", 1)
    tap.sent_to_target(True)
    tap.end()
    tap.end()  # once only
    assert out.getvalue() == LEGEND + "}>\n"


def test_a_session_without_markers_adds_no_empty_line() -> None:
    tap, out = markers()
    tap.end()
    assert out.getvalue() == LEGEND


def test_markers_of_concurrent_sessions_never_share_a_line() -> None:
    """Each line of markers holds one session's: a switch of session starts a new line."""
    out = io.StringIO()
    first = TrafficMarkers(lambda: out)
    first.from_client(b"a", 1)
    second = TrafficMarkers(lambda: out)  # the legend's leading newline ends first's line
    second.from_target(b"b")
    first.sent_to_target(True)  # a new line, not after second's "{"
    first.from_target(b"c")
    second.sent_to_client(True)
    first.end()  # second holds the line: nothing to end for first
    second.end()
    assert out.getvalue() == LEGEND + "}" + LEGEND + "{" + "\n>{" + "\n<" + "\n"
    assert out.getvalue().split(LEGEND)[-1].splitlines() == ["{", ">{", "<"]


def test_markers_go_nowhere_when_stdout_is_gone() -> None:
    """A missing stdout (None) or a closed one never raises into the relay."""
    TrafficMarkers(lambda: None).from_target(b"x")
    closed = io.StringIO()
    tap = TrafficMarkers(lambda: closed)
    closed.close()
    tap.sent_to_client(True)


def test_hexdump_matches_hexdump_dash_c() -> None:
    """The layout is ``hexdump -C``'s (expected lines captured from util-linux hexdump)."""
    assert hexdump(b"Hello, world!\nHello again") == [
        "00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0a 48 65  |Hello, world!.He|",
        "00000010  6c 6c 6f 20 61 67 61 69  6e                       |llo again|",
    ]
    assert hexdump(b"hello") == [
        "00000000  68 65 6c 6c 6f                                    |hello|"]
    assert hexdump(bytes([0, 0x7F, 0x80, 0xFF])) == [
        "00000000  00 7f 80 ff                                       |....|"]
    assert hexdump(b"") == []


def test_the_dump_logs_direction_session_size_and_bytes(caplog: pytest.LogCaptureFixture) -> None:
    """Each read is one INFO record: header line, then the dump of the first N bytes."""
    tap = TrafficDump("127.0.0.1", 7, limit=16)
    with caplog.at_level(logging.INFO, logger="proxy.traffic"):
        tap.from_client(b"hello", 1)
        tap.from_target(b"0123456789abcdefXYZ")
        tap.from_client(b"", 0)  # nothing forwarded: nothing to show
        tap.sent_to_client(True)
    assert [r.getMessage() for r in caplog.records] == [
        "127.0.0.1: session 7: client -> target: 5 bytes\n"
        "00000000  68 65 6c 6c 6f                                    |hello|",
        "127.0.0.1: session 7: target -> client: 19 bytes, first 16 shown\n"
        "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_no_tap_is_built_when_every_debugging_option_is_off() -> None:
    """The relay pays nothing: ``session_tap`` returns None."""
    assert session_tap(Settings(verbose=True), 1, "127.0.0.1") is None


def test_the_session_tap_calls_every_enabled_tap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """--traffic, --traffic-dump and --record together: markers, a dump and a recording."""
    logged: list[str] = []
    settings = Settings(traffic=True, traffic_dump=8, record=str(tmp_path / "rec"))
    tap = session_tap(settings, 3, "10.0.0.1", lambda fmt, *a: logged.append(fmt % a))
    assert isinstance(tap, SessionTap)
    with caplog.at_level(logging.INFO, logger="proxy.traffic"):
        tap.from_client(b"hi", 1)
        tap.sent_to_target(True)
        tap.from_target(b"yo")
        tap.sent_to_client(False)
    tap.close()
    tap.close()
    assert capsys.readouterr().out == LEGEND + "}>{<.\n"  # the session's line ended (#16)
    assert logged == [f"opening record file: {tmp_path / 'rec.3'}"]
    assert len(caplog.records) == 2 and "session 3: client -> target: 2 bytes" in caplog.text
    text = (tmp_path / "rec.3").read_text()
    assert text.startswith("var VNC_frame_data = [\n'}") and text.endswith("'EOF'];\n")
    assert text.count("'EOF'];") == 1
