"""``python -m proxy.replay FILE``: read a ``--record`` recording (spec §7.4) back.

Prints the session as a timeline, or with ``--target host:port`` replays its client side
against a TCP target with the recorded timing and prints what the target answers. The
parser follows the format (websockify's files and ours), not ``proxy.observe.record``'s code.
Exit status: 0 done, 1 the target failed, 2 bad usage or a malformed recording.
"""

from __future__ import annotations

import argparse
import codecs
import selectors
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

HEADER = "var VNC_frame_data = ["
FOOTER = "'EOF'];"
PREVIEW = 16  # bytes shown per timeline line
CONNECT_TIMEOUT = 10.0  # seconds
#: After the last client entry, how long to keep reading answers from a quiet target.
ANSWER_WAIT = 2.0  # seconds
#: Upper bound on a whole replay beyond the recorded duration.
REPLAY_SLACK = 30.0  # seconds


class RecordingError(ValueError):
    """The file is not a recording in websockify's format."""


@dataclass(frozen=True)
class Entry:
    """One recorded read: ``ms`` after the session start, direction and bytes."""

    ms: int
    from_client: bool
    data: bytes


@dataclass(frozen=True)
class Recording:
    entries: list[Entry]
    #: False when the ``'EOF'];`` line is missing (the proxy died mid-session).
    complete: bool


def unescape(text: str) -> bytes:
    """Undo websockify's encoding: ``unicode_escape`` (which also takes ``\\'``), then Latin-1.

    Raises:
        RecordingError: a bad escape, or a character beyond U+00FF.
    """
    try:
        return codecs.decode(text.encode("latin-1"), "unicode_escape").encode("latin-1")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise RecordingError(f"bad escape in data: {exc.reason}") from None


def parse_entry(line: str) -> Entry:
    """``'}<ms>}<data>',`` (client → target) or ``'{<ms>{<data>',`` (target → client)."""
    if len(line) < 5 or not line.startswith("'") or not line.endswith("',"):
        raise RecordingError("expected '}<ms>}<data>', or '{<ms>{<data>',")
    body = line[1:-2]
    mark = body[0]
    if mark not in "{}":
        raise RecordingError(f"unknown direction {mark!r}")
    ms_text, sep, data = body[1:].partition(mark)
    if not sep or not ms_text.isdigit() or not ms_text.isascii():
        raise RecordingError(f"bad time field {ms_text[:20]!r}")
    return Entry(int(ms_text), mark == "}", unescape(data))


def parse_recording(text: str) -> Recording:
    """Parse a whole recording.

    Raises:
        RecordingError: with the 1-based line number in the message.
    """
    lines = text.split("\n")
    if lines[0].rstrip("\r") != HEADER:
        raise RecordingError(f"line 1: expected {HEADER!r}")
    entries: list[Entry] = []
    complete = False
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip("\r")
        if complete:
            if line.strip():
                raise RecordingError(f"line {number}: text after {FOOTER!r}")
            continue
        if line == FOOTER:
            complete = True
        elif line or number < len(lines):  # a final empty string is the last newline
            try:
                entries.append(parse_entry(line))
            except RecordingError as exc:
                raise RecordingError(f"line {number}: {exc}") from None
    return Recording(entries, complete)


def preview(data: bytes, size: int = PREVIEW) -> str:
    """The first ``size`` bytes as hex and ASCII, ``…`` marking a cut."""
    shown = data[:size]
    hexes = " ".join(f"{b:02x}" for b in shown)
    text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in shown)
    cut = "..." if len(data) > size else ""
    return f"{hexes:<{3 * size - 1}}  |{text}|{cut}"


def timeline_line(ms: int, arrow: str, data: bytes) -> str:
    return f"{ms / 1000:10.3f}s  {arrow}  {len(data):7d}  {preview(data)}"


CLIENT_ARROW = "client -> target"
TARGET_ARROW = "client <- target"


def print_timeline(recording: Recording, out: TextIO) -> None:
    """One line per entry (seconds, direction, size, preview), then totals."""
    out.write(f"{'time':>11}  {'direction':<16}  {'bytes':>7}  preview\n")
    for e in recording.entries:
        out.write(timeline_line(e.ms, CLIENT_ARROW if e.from_client else TARGET_ARROW, e.data)
                  + "\n")
    sent = [e for e in recording.entries if e.from_client]
    got = [e for e in recording.entries if not e.from_client]
    duration = recording.entries[-1].ms / 1000 if recording.entries else 0.0
    out.write(f"{len(sent)} client entries ({sum(len(e.data) for e in sent)} bytes), "
              f"{len(got)} target entries ({sum(len(e.data) for e in got)} bytes), "
              f"{duration:.3f}s\n")
    if not recording.complete:
        out.write(f"note: no {FOOTER!r} line: the recording ends abruptly\n")


@dataclass
class _Replay:
    """State of one replay against a live target."""

    sock: socket.socket
    entries: list[Entry]
    speed: float
    delay: bool
    out: TextIO
    wait: float = ANSWER_WAIT
    #: Stop once the target answered this many bytes (what it sent in the recording).
    expected: int | None = None
    received: int = 0

    def _due(self, start: float, entry: Entry) -> float:
        return start + entry.ms / 1000 / self.speed if self.delay else start

    def run(self) -> None:
        """Send each client entry when due, print each answer; bounded in time."""
        pending = list(self.entries)
        buffer = bytearray()
        start = time.monotonic()
        last = self._due(start, pending[-1]) if pending else start
        hard_deadline = last + REPLAY_SLACK
        quiet_deadline = last + self.wait
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                while pending and self._due(start, pending[0]) <= now:
                    entry = pending.pop(0)
                    buffer += entry.data
                    self.out.write(timeline_line(int((now - start) * 1000), CLIENT_ARROW,
                                                 entry.data) + "\n")
                idle = now >= quiet_deadline or self._answered()
                done = not pending and not buffer and idle
                if done or now >= hard_deadline:
                    return
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buffer else 0)
                sel.modify(self.sock, events)
                wake = self._due(start, pending[0]) if pending else quiet_deadline
                for _key, mask in sel.select(max(0.0, min(wake, hard_deadline) - now)):
                    if mask & selectors.EVENT_WRITE:
                        del buffer[:self.sock.send(buffer)]
                    if mask & selectors.EVENT_READ and not self._read(start):
                        return
                    if not pending and not buffer:
                        quiet_deadline = max(quiet_deadline, time.monotonic() + self.wait)

    def _answered(self) -> bool:
        return self.expected is not None and self.received >= self.expected > 0

    def _read(self, start: float) -> bool:
        """Print one answer from the target; False at EOF."""
        data = self.sock.recv(65536)
        ms = int((time.monotonic() - start) * 1000)
        if not data:
            self.out.write(f"{ms / 1000:10.3f}s  target closed the connection\n")
            return False
        self.received += len(data)
        self.out.write(timeline_line(ms, TARGET_ARROW, data) + "\n")
        return True


def replay(recording: Recording, host: str, port: int, speed: float, delay: bool,
           out: TextIO, wait: float = ANSWER_WAIT) -> int:
    """Replay the client side against ``host:port``; returns the exit status.

    Stops once every client entry is sent and either the target answered as many bytes
    as in the recording, or it stayed silent for ``wait`` seconds, or it closed.
    """
    client = [e for e in recording.entries if e.from_client]
    expected = sum(len(e.data) for e in recording.entries if not e.from_client)
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        sys.stderr.write(f"replay: cannot connect to {host}:{port}: {exc}\n")
        return 1
    with sock:
        sock.setblocking(False)
        state = _Replay(sock, client, speed, delay, out, wait, expected)
        try:
            state.run()
        except OSError as exc:
            sys.stderr.write(f"replay: connection to {host}:{port} failed: {exc}\n")
            return 1
    out.write(f"sent {sum(len(e.data) for e in client)} bytes in {len(client)} entries; "
              f"target answered {state.received} bytes (recording: {expected})\n")
    return 0


def _target(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _positive(value: str) -> float:
    try:
        speed = float(value)
    except ValueError:
        speed = 0.0
    if not speed > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return speed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m proxy.replay",
        description="Print a --record recording as a timeline, or replay its client side.")
    parser.add_argument("file", help="a recording (websockify's or ours)")
    parser.add_argument("--target", type=_target, metavar="HOST:PORT",
                        help="replay the client -> target entries against this TCP target")
    parser.add_argument("--speed", type=_positive, default=1.0,
                        help="timing factor: 2 replays twice as fast (default 1)")
    parser.add_argument("--no-delay", action="store_true",
                        help="send every client entry at once, ignoring the recorded timing")
    parser.add_argument("--wait", type=_positive, default=ANSWER_WAIT, metavar="SECONDS",
                        help="stop after the target was silent this long once everything "
                             f"was sent (default {ANSWER_WAIT:g})")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = out or sys.stdout
    try:
        with open(args.file, encoding="latin-1", newline="") as f:
            recording = parse_recording(f.read())
    except OSError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except RecordingError as exc:
        parser.exit(2, f"{parser.prog}: error: {args.file}: not a recording: {exc}\n")
    if args.target is None:
        print_timeline(recording, out)
        return 0
    host, port = args.target
    return replay(recording, host, port, args.speed, not args.no_delay, out, args.wait)


if __name__ == "__main__":
    raise SystemExit(main())
