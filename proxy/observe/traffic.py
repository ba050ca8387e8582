"""Relay taps for debugging: ``--traffic`` markers, ``--traffic-dump`` and ``--record``.

``session_tap`` builds the taps one session needs, or returns None so that a relay
without them pays nothing (issue #4). Taps observe; they never change what is relayed.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from proxy.observe.record import LogMessage, Recorder
from proxy.transport.relay import Tap
from proxy.settings import Settings

log = logging.getLogger("proxy.traffic")

#: Printed on stdout when a session starts with ``--traffic``, verbatim, leading empty
#: line included (spec §3.4).
LEGEND = (
    "\n"
    "Traffic Legend:\n"
    "    }  - Client receive\n"
    "    }. - Client receive partial\n"
    "    {  - Target receive\n"
    "\n"
    "    >  - Target send\n"
    "    >. - Target send partial\n"
    "    <  - Client send\n"
    "    <. - Client send partial\n"
)
#: ``websockify-client --traffic`` (issue #20 §2): the same markers, but its relay's
#: "client" is the WebSocket server and its "target" the local TCP connection, so the
#: legend names those. ``.>`` as printed (the server's legend says ``>.``, spec §13.21).
CLIENT_LEGEND = (
    "\n"
    "Traffic Legend:\n"
    "    }  - WebSocket receive\n"
    "    }. - WebSocket receive partial\n"
    "    {  - TCP receive\n"
    "\n"
    "    >  - TCP send\n"
    "    .> - TCP send partial\n"
    "    <  - WebSocket send\n"
    "    <. - WebSocket send partial\n"
)
CLIENT_MESSAGE = "}"  # one complete data message from the client
CLIENT_PARTIAL = "}."  # a client read that completed no data message
TARGET_READ = "{"  # one read from the target (one frame to the client)
TARGET_SENT = ">"  # a write that emptied the queue towards the target
# The legend says ">." but websockify's code prints ".>" (spec §3.4, §13.21): we follow
# the code, since that is what people have seen on their terminals.
TARGET_PARTIAL = ".>"
CLIENT_SENT = "<"  # a write that emptied the queue towards the client
CLIENT_PARTIAL_SEND = "<."  # a write that left bytes queued for the client

#: One lock for stdout shared by every connection thread, so markers never tear.
_STDOUT_LOCK = threading.Lock()


class _Line:
    """Whose markers the current (unterminated) stdout line holds; guarded by _STDOUT_LOCK."""

    owner: object | None = None


#: Bytes per ``--traffic-dump`` line, as ``hexdump -C``.
DUMP_WIDTH = 16


def _stdout() -> TextIO | None:
    return sys.stdout


class TrafficMarkers:
    """websockify's ``--traffic`` output: markers on stdout, flushed each time.

    Beyond websockify (#16 Operations 2): a line of markers belongs to one session. It
    is ended with a newline when the session ends (``end()``), and before another
    session's markers or legend are written, so markers never run into the next log
    line or into another session's markers. The legend and markers are websockify's.

    Args:
        out: returns the stream to write to (looked up per write, so a replaced
            ``sys.stdout`` is honoured); None from it means "nowhere".
        legend: printed first; ``websockify-client`` names its own sides (``CLIENT_LEGEND``).
    """

    def __init__(self, out: Callable[[], TextIO | None] = _stdout, legend: str = LEGEND) -> None:
        self._out = out
        self._write(legend, owner=None)  # its leading "\n" ends another session's line

    def _write(self, text: str, owner: object | None) -> None:
        with _STDOUT_LOCK:
            self._write_locked(text, owner)

    def _write_locked(self, text: str, owner: object | None) -> None:
        """Write ``text``, leaving ``owner`` (None: nobody) with the line it ends on."""
        assert _STDOUT_LOCK.locked()
        stream = self._out()
        if stream is None:
            return
        if _Line.owner not in (None, owner) and not text.startswith("\n"):
            text = "\n" + text  # another session's markers end the line: end it first
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            return  # stdout closed or gone: markers are best effort, the relay goes on
        _Line.owner = owner

    def _mark(self, marker: str) -> None:
        self._write(marker, owner=self)

    def end(self) -> None:
        """The session ended: end its line of markers, if it holds the current line."""
        with _STDOUT_LOCK:
            if _Line.owner is self:
                self._write_locked("\n", owner=None)

    def from_client(self, data: bytes, messages: int) -> None:
        self._mark(CLIENT_MESSAGE * messages if messages else CLIENT_PARTIAL)

    def from_target(self, data: bytes) -> None:
        self._mark(TARGET_READ)

    def sent_to_target(self, complete: bool) -> None:
        self._mark(TARGET_SENT if complete else TARGET_PARTIAL)

    def sent_to_client(self, complete: bool) -> None:
        self._mark(CLIENT_SENT if complete else CLIENT_PARTIAL_SEND)


def hexdump(data: bytes) -> list[str]:
    """``hexdump -C`` lines (offset, two groups of 8 hex bytes, ``|ASCII|``), no final offset."""
    lines = []
    for offset in range(0, len(data), DUMP_WIDTH):
        chunk = data[offset:offset + DUMP_WIDTH]
        hexes = [f"{b:02x}" for b in chunk]
        left, right = " ".join(hexes[:8]), " ".join(hexes[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {left:<23}  {right:<23}  |{text}|")
    return lines


def dump_message(client: str, session_id: int, direction: str, data: bytes, limit: int) -> str:
    """The ``--traffic-dump`` text for one read: a header line, then the dump lines."""
    shown = data[:limit]
    more = f", first {len(shown)} shown" if len(shown) < len(data) else ""
    head = f"{client}: session {session_id}: {direction}: {len(data)} bytes{more}"
    return "\n".join([head, *hexdump(shown)])


class TrafficDump:
    """``--traffic-dump``: log each read's direction, size and first ``limit`` bytes (INFO).

    One log record per read (header and dump lines together), so concurrent sessions
    never interleave inside a dump. Client reads show the payload bytes forwarded to the
    target (unmasked, without frame headers); reads that forwarded nothing are skipped.
    """

    CLIENT_TO_TARGET = "client -> target"
    TARGET_TO_CLIENT = "target -> client"

    def __init__(self, client: str, session_id: int, limit: int) -> None:
        self._client = client
        self._session_id = session_id
        self._limit = limit

    def _dump(self, direction: str, data: bytes) -> None:
        if data and log.isEnabledFor(logging.INFO):
            log.info("%s", dump_message(self._client, self._session_id, direction, data,
                                        self._limit))

    def from_client(self, data: bytes, messages: int) -> None:
        self._dump(self.CLIENT_TO_TARGET, data)

    def from_target(self, data: bytes) -> None:
        self._dump(self.TARGET_TO_CLIENT, data)

    def sent_to_target(self, complete: bool) -> None:
        pass

    def sent_to_client(self, complete: bool) -> None:
        pass


class SessionTap:
    """The taps of one session, called in order; ``close()`` ends the recording and the
    line of ``--traffic`` markers."""

    def __init__(self, taps: list[Tap], recorder: Recorder | None = None,
                 markers: TrafficMarkers | None = None) -> None:
        self._taps = tuple(taps)
        self._recorder = recorder
        self._markers = markers

    def from_client(self, data: bytes, messages: int) -> None:
        for tap in self._taps:
            tap.from_client(data, messages)

    def from_target(self, data: bytes) -> None:
        for tap in self._taps:
            tap.from_target(data)

    def sent_to_target(self, complete: bool) -> None:
        for tap in self._taps:
            tap.sent_to_target(complete)

    def sent_to_client(self, complete: bool) -> None:
        for tap in self._taps:
            tap.sent_to_client(complete)

    def close(self) -> None:
        if self._markers is not None:
            self._markers.end()
        if self._recorder is not None:
            self._recorder.close()


def session_tap(
    settings: Settings,
    session_id: int,
    client_label: str,
    log_message: LogMessage | None = None,
) -> SessionTap | None:
    """The taps ``settings`` asks for, for one WebSocket session; None when none is on.

    Args:
        session_id: the connection counter (websockify's ``handler_id``, spec §4.1),
            which also names the recording ``<record>.<session_id>`` (§7.4).
        client_label: how the logs name the client (its IP address).
        log_message: the handler's request-style logger, for ``opening record file``.

    Raises:
        OSError: the recording cannot be created (as in websockify, the session fails).
    """
    taps: list[Tap] = []
    markers = None
    if settings.traffic:
        markers = TrafficMarkers()
        taps.append(markers)
    if settings.traffic_dump > 0:
        taps.append(TrafficDump(client_label, session_id, settings.traffic_dump))
    recorder = None
    if settings.record:
        recorder = Recorder(settings.record, session_id, log_message)
        taps.append(recorder)
    return SessionTap(taps, recorder, markers) if taps else None
