"""Frame policy: what the relay does with each wsproto event from the client.

Pure: ``ClientStream`` turns bytes from the client into bytes for the target and bytes
for the client (pongs, close frames) and decides when the session closes. It never
touches a socket; ``relay`` moves the bytes. The close codes and reason strings
websockify emits (spec §5.5, typos included) live here and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import struct
from dataclasses import dataclass, field

from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage

from proxy.settings import ReplyFrames, TextFrames

# Close reasons fixed by websockify 0.13.0 (spec §5.5), verbatim.
TARGET_CLOSED = "Target closed"
CONNECT_FAILED = "Failed to connect to downstream server"
TEXT_UNSUPPORTED = "Unsupported: Text frames are not supported"
FRAME_NOT_MASKED = "Procotol error: Frame not masked"
UNEXPECTED_CONTINUATION = "Procotol error: Unexpected continuation frame"
UNEXPECTED_NEW_FRAME = "Procotol error: Unexpected new frame"
INVALID_UTF8_IN_CLOSE = "Procotol error: Invalid UTF-8 in close"
UNKNOWN_OPCODE = "Unsupported: Unknown opcode 0x%02x"
# Ours, for conditions websockify does not detect.
MESSAGE_TOO_BIG = "Message too big"
SHUTTING_DOWN = "Server shutting down"
INVALID_BASE64 = "Invalid base64 data"
INVALID_UTF8 = "Invalid UTF-8 in text frame"
IDLE_TIMEOUT = "Idle timeout"
SESSION_TIME_LIMIT = "Session time limit reached"
HEARTBEAT_TIMEOUT = "No pong within the heartbeat timeout"
RECORDING_FAILED = "Failed to open the recording"
#: Closes that a limit started (the handler logs them at INFO).
LIMIT_REASONS = frozenset({MESSAGE_TOO_BIG, IDLE_TIMEOUT, SESSION_TIME_LIMIT, HEARTBEAT_TIMEOUT})

NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
ABNORMAL = 1006
INVALID_DATA = 1007
TOO_BIG = 1009
INTERNAL_ERROR = 1011

#: Largest piece of a binary message held back to reach the target in one write.
COALESCE = 256 * 1024  # bytes

_INVALID_OPCODE = re.compile(r"Invalid opcode (0x[0-9a-fA-F]+)")


class DataMode(enum.Enum):
    """How payload travels between client and target, chosen by the subprotocol (§4.4)."""

    #: Binary frames both ways (websockify's only mode since 0.9).
    BINARY = "binary"
    #: Legacy ``base64`` subprotocol: base64 text frames both ways.
    BASE64 = "base64"


@dataclass(frozen=True)
class CloseInfo:
    """How a session ended: the close code and reason, and who started the close."""

    code: int
    reason: str
    by_client: bool


@dataclass
class Output:
    """Bytes produced by feeding client data to a ``ClientStream``.

    Kept as lists of chunks so the relay can queue them without copying payloads.
    """

    target_chunks: list[bytes | bytearray] = field(default_factory=list)
    client_chunks: list[bytes | bytearray] = field(default_factory=list)
    #: Complete data messages decoded from the client (for ``--traffic``).
    messages: int = 0

    @property
    def to_target(self) -> bytes:
        """Everything for the target, joined (a copy: for taps and tests)."""
        return b"".join(self.target_chunks)

    @property
    def to_client(self) -> bytes:
        """Everything for the client, joined (a copy: for taps and tests)."""
        return b"".join(self.client_chunks)


_BINARY_FIN = 0x82  # FIN + opcode 2 (RFC 6455 §5.2)
_TEXT_FIN = 0x81  # FIN + opcode 1
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def frame_header(first: int, length: int) -> bytes:
    """The header of an unmasked server frame (RFC 6455 §5.2): 2, 4 or 10 bytes."""
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return _LEN16.pack(first, 126, length)
    return _LEN64.pack(first, 127, length)


def protocol_error(code: int, reason: str) -> tuple[int, str]:
    """Map a wsproto parse failure to the RFC code and websockify's text where it has one.

    RFC 6455 codes win over websockify's (it answers some violations with 1003, §13.3);
    the reason keeps websockify's wording so clients matching on it still match (§13.22).
    """
    if reason == "server received unexpected unmasked frame":
        return PROTOCOL_ERROR, FRAME_NOT_MASKED
    if reason == "unexpected CONTINUATION":
        return PROTOCOL_ERROR, UNEXPECTED_CONTINUATION
    if reason.startswith("expected CONTINUATION"):
        return PROTOCOL_ERROR, UNEXPECTED_NEW_FRAME
    if reason.startswith("Error decoding CLOSE reason"):
        return INVALID_DATA, INVALID_UTF8_IN_CLOSE
    if code == INVALID_DATA:
        # wsproto passes on Python's decoder message, whose byte position means
        # nothing to the client.
        return INVALID_DATA, INVALID_UTF8
    match = _INVALID_OPCODE.fullmatch(reason)
    if match:
        return PROTOCOL_ERROR, UNKNOWN_OPCODE % int(match.group(1), 16)
    return code, reason


class ClientStream:
    """The client's side of one WebSocket session, as the relay sees it.

    Binary chunks go to the target as they arrive (never reassembled); text messages are
    held until complete so that no partial or invalid UTF-8 reaches the target.
    """

    def __init__(
        self,
        ws: WSConnection,
        mode: DataMode = DataMode.BINARY,
        text_frames: TextFrames = TextFrames.ACCEPT,
        max_message_size: int = 64 * 1024 * 1024,
        coalesce: int = COALESCE,
        reply: ReplyFrames = ReplyFrames.BINARY,
        compressed: bool = False,
    ) -> None:
        assert ws.state is ConnectionState.OPEN
        self._ws = ws
        self._mode = mode
        self._text_frames = text_frames
        self._max_message_size = max_message_size
        self._message_size = 0
        self._text = bytearray()
        self._coalesce = coalesce
        self._binary: list[bytes | bytearray] = []  # the current binary message, held back
        self._binary_size = 0
        # After a parse failure wsproto's parser is finished: later bytes are dropped.
        self._parser_alive = True
        self._reply = reply
        self._reply_text = reply is ReplyFrames.TEXT  # --reply-frames=mirror follows the client
        #: permessage-deflate was negotiated: data frames must go through wsproto.
        self._compressed = compressed
        self._held = b""  # an incomplete UTF-8 sequence at the end of the last text reply
        #: Pongs received so far (``--heartbeat-timeout`` watches this count).
        self.pongs = 0
        #: Set once a Close was sent or received (or the client vanished).
        self.close_info: CloseInfo | None = None

    @property
    def failed(self) -> bool:
        """True after a protocol error from the client: our Close is sent, the parser is dead."""
        return not self._parser_alive

    @property
    def finished(self) -> bool:
        """True once both Close frames were exchanged or the client's TCP stream ended."""
        return self._ws.state is ConnectionState.CLOSED

    def receive(self, data: bytes | None) -> Output:
        """Feed bytes read from the client (None at EOF) and return what they produce."""
        out = Output()
        if self._ws.state is ConnectionState.CLOSED:
            return out
        if data is not None and not self._parser_alive:
            return out
        self._ws.receive_data(data)
        for event in self._ws.events():
            self._dispatch(event, out)
        return out

    def frame_data(self, data: bytes) -> tuple[bytes, ...]:
        """Frame bytes read from the target as ``(header, payload)``, without copying the
        payload; ``()`` once the session is closing (nothing may follow a Close).

        We write data frame headers ourselves: wsproto's ``send(Message)`` copies the
        payload three times, which bounded the target→client direction (issue #8). Safe
        to mix with wsproto: a single FIN frame leaves its sender state untouched, and
        control frames and the close still go through wsproto. With permessage-deflate
        the frame must be compressed (RSV1), so wsproto builds it: one ``(frame,)``.
        """
        if self._ws.state is not ConnectionState.OPEN:
            return ()
        if self._mode is DataMode.BASE64:
            text = base64.b64encode(data)
            if self._compressed:
                return (self._ws.send(TextMessage(data=text.decode("ascii"))),)
            return frame_header(_TEXT_FIN, len(text)), text
        if self._held:
            data, self._held = self._held + data, b""
        if self._reply_text:
            return self._text_frame(data)
        return self._binary_frame(data)

    def _binary_frame(self, data: bytes) -> tuple[bytes, ...]:
        if self._compressed:
            return (self._ws.send(BytesMessage(data=data)),)
        return frame_header(_BINARY_FIN, len(data)), data

    def _text_frame(self, data: bytes) -> tuple[bytes, ...]:
        """A text frame (``--reply-frames=text|mirror``) that never splits a code point.

        An incomplete UTF-8 sequence at the end (at most 3 bytes) waits for the next read;
        a read that is not UTF-8 at all goes as a binary frame: the bytes arrive intact,
        and a text frame with invalid UTF-8 would make the client fail the connection.
        """
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data" or exc.end != len(data):
                return self._binary_frame(data)
            data, self._held = data[:exc.start], data[exc.start:]
            if not data:
                return ()
            text = data.decode("utf-8")
        if self._compressed:
            return (self._ws.send(TextMessage(data=text)),)
        return frame_header(_TEXT_FIN, len(data)), data

    def send_data(self, data: bytes) -> bytes:
        """``frame_data`` joined into one frame; b"" once the session is closing."""
        return b"".join(self.frame_data(data))

    def ping(self) -> bytes:
        """An empty ping (``--heartbeat``, spec §5.4)."""
        if self._ws.state is not ConnectionState.OPEN:
            return b""
        return self._ws.send(Ping())

    def close(self, code: int, reason: str) -> bytes:
        """Start closing from our side; a no-op when a close is already under way."""
        if self._ws.state is not ConnectionState.OPEN:
            return b""
        if self.close_info is None:
            self.close_info = CloseInfo(code, reason, by_client=False)
        # A held-back UTF-8 fragment can never be completed now: it goes as binary.
        held, self._held = self._held, b""
        data = b"".join(self._binary_frame(held)) if held else b""
        return data + self._ws.send(CloseConnection(code=code, reason=reason))

    def _dispatch(self, event: Event, out: Output) -> None:
        if isinstance(event, CloseConnection):
            self._on_close(event, out)
        elif self.close_info is not None:
            return  # data after a Close is discarded (websockify forwarded it, §13.17)
        elif isinstance(event, BytesMessage):
            self._on_bytes(event, out)
        elif isinstance(event, TextMessage):
            self._on_text(event, out)
        elif isinstance(event, Ping):
            out.client_chunks.append(self._ws.send(event.response()))
        elif isinstance(event, Pong):
            self.pongs += 1  # websockify ignores pongs (spec §5.4); --heartbeat-timeout counts

    def _on_close(self, event: CloseConnection, out: Output) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            # RFC 6455 §5.5.1: echo the code and reason (empty payload when none was given).
            out.client_chunks.append(self._ws.send(event.response()))
            if self.close_info is None:
                self.close_info = CloseInfo(event.code, event.reason or "", by_client=True)
        elif state is ConnectionState.OPEN:
            # wsproto reports a protocol violation as a CloseConnection it expects us to send.
            self._parser_alive = False
            out.client_chunks.append(self.close(*protocol_error(event.code, event.reason or "")))
        elif self.close_info is None:
            # EOF without a Close frame (1006), or the reply to a close we started.
            self.close_info = CloseInfo(event.code, event.reason or "", by_client=True)

    def _grow(self, size: int, finished: bool, out: Output) -> bool:
        """Account for a chunk of the current message; False (and close 1009) if too big."""
        self._message_size += size
        if self._message_size > self._max_message_size:
            out.client_chunks.append(self.close(TOO_BIG, MESSAGE_TOO_BIG))
            return False
        if finished:
            self._message_size = 0
            out.messages += 1
        return True

    def _on_bytes(self, event: BytesMessage, out: Output) -> None:
        """Forward each binary frame in one piece when it fits ``coalesce`` bytes.

        A frame that spans several reads would otherwise reach the target in several
        writes, and an echoing target would answer in several frames (Autobahn 1.2.6-8).
        Frames, not messages, are the unit: each fragment of a fragmented message goes on
        as soon as it is complete (issue #3: never wait for the whole message, which
        websockify does without bound, §13.4); larger frames stream on in pieces of
        ``coalesce`` bytes, so memory stays bounded.
        """
        if self._reply is ReplyFrames.MIRROR:
            self._reply_text = False
        if not self._grow(len(event.data), event.message_finished, out):
            self._binary, self._binary_size = [], 0
            return
        if event.frame_finished and not self._binary:
            out.target_chunks.append(event.data)  # the common case: no copy
            return
        self._binary.append(event.data)
        self._binary_size += len(event.data)
        if event.frame_finished or self._binary_size >= self._coalesce:
            out.target_chunks.append(b"".join(self._binary))
            self._binary, self._binary_size = [], 0

    def _on_text(self, event: TextMessage, out: Output) -> None:
        if self._reply is ReplyFrames.MIRROR:
            self._reply_text = True
        if self._mode is DataMode.BINARY and self._text_frames is TextFrames.REJECT:
            out.client_chunks.append(self.close(UNSUPPORTED_DATA, TEXT_UNSUPPORTED))
            return
        # wsproto decodes incrementally: each chunk holds whole code points, so the
        # encoded size is exact and an invalid sequence closes 1007 before we forward.
        chunk = event.data.encode("utf-8")
        if not self._grow(len(chunk), event.message_finished, out):
            return
        self._text += chunk
        if not event.message_finished:
            return
        text, self._text = bytes(self._text), bytearray()
        if self._mode is DataMode.BINARY:
            out.target_chunks.append(text)
            return
        try:
            out.target_chunks.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            out.messages -= 1
            out.client_chunks.append(self.close(INVALID_DATA, INVALID_BASE64))
