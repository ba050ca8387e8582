"""Frame policy: what the relay does with each wsproto event from the client.

Pure: ``ClientStream`` turns bytes from the client into bytes for the target and bytes
for the client (pongs, close frames) and decides when the session closes. It never
touches a socket; ``relay`` moves the bytes. The close codes and reasons are in
``proxy.protocol.closes``.

Nothing is held whole (issue #15): binary and text data go on as they arrive (text as
valid UTF-8 prefixes; websockify and our earlier versions held a text message until it
was complete), and compressed input is handed to wsproto in slices whose worst-case
inflation fits the room the relay has towards the target.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass, field

from wsproto import WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage

from proxy.protocol.fastframe import FrameBoundary, frame_header, single_binary_frame
from proxy.protocol.closes import (INVALID_BASE64, INVALID_DATA, MESSAGE_TOO_BIG, TEXT_UNSUPPORTED,
                                   TOO_BIG, UNSUPPORTED_DATA, CloseCode, CloseInfo, protocol_error)
from proxy.settings import HIGH_WATER, RECV_SIZE, ReplyFrames, TextFrames

#: Largest piece of a data frame held back to reach the target in one write.
COALESCE = 256 * 1024  # bytes
#: Most bytes one byte of deflate data can inflate to: a 258-byte match coded in 2 bits
#: is 1032 per byte; the slack covers symbols straddling a slice's first and last byte.
MAX_INFLATE_RATIO = 1032  # bytes out per byte in
INFLATE_SLACK = 4 * 1024  # bytes


class DataMode(enum.Enum):
    """How payload travels between client and target, chosen by the subprotocol (§4.4)."""

    #: Binary frames both ways (websockify's only mode since 0.9).
    BINARY = "binary"
    #: Legacy ``base64`` subprotocol: base64 text frames both ways.
    BASE64 = "base64"


@dataclass
class Output:
    """Bytes produced by feeding client data to a ``ClientStream``.

    Kept as lists of chunks so the relay can queue them without copying payloads.
    """

    target_chunks: list[bytes | bytearray] = field(default_factory=list)
    client_chunks: list[bytes | bytearray] = field(default_factory=list)
    #: Complete data messages decoded from the client (for ``--traffic``).
    messages: int = 0
    #: Total size of ``target_chunks``.
    target_size: int = 0

    def add_target(self, chunk: bytes | bytearray) -> None:
        self.target_chunks.append(chunk)
        self.target_size += len(chunk)

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


class ClientStream:
    """The client's side of one WebSocket session, as the relay sees it.

    Data goes to the target as it arrives, never reassembled into messages: binary
    chunks as they are, text as the valid UTF-8 prefixes wsproto's incremental decoder
    yields (a sequence split across frames or reads waits for its remaining bytes only;
    invalid UTF-8 closes 1007 after what came before it). With permessage-deflate, input
    waits in ``backlog`` until the caller has room for its worst-case inflation.
    """

    def __init__(
        self,
        ws: WSConnection | Connection,
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
        self._b64_held = b""  # base64 text not yet a multiple of 4 characters
        self._b64_padded = False  # the current base64 message has had its '=' padding
        self._coalesce = coalesce
        self._binary: list[bytes | bytearray] = []  # the current binary message, held back
        self._binary_size = 0
        # After a parse failure wsproto's parser is finished: later bytes are dropped.
        self._parser_alive = True
        self._reply = reply
        self._reply_text = reply is ReplyFrames.TEXT  # --reply-frames=mirror follows the client
        #: permessage-deflate was negotiated: data frames must go through wsproto.
        self._compressed = compressed
        self._boundary = FrameBoundary()  # where wsproto's input stands (_fast_binary)
        self._held = b""  # an incomplete UTF-8 sequence at the end of the last text reply
        # Compressed input not yet fed to wsproto (``receive``), and an EOF behind it.
        self._backlog = b""
        self._backlog_pos = 0
        self._eof_pending = False
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

    @property
    def backlog(self) -> int:
        """Compressed bytes received but not yet fed to wsproto (0 without deflate)."""
        return len(self._backlog) - self._backlog_pos

    def receive(self, data: bytes | None, room: int = HIGH_WATER + RECV_SIZE) -> Output:
        """Feed bytes read from the client (None at EOF) and return what they produce.

        Args:
            data: the bytes read; None at EOF; b"" to feed more of the ``backlog``.
            room: with permessage-deflate, how many bytes the caller can still take for
                the target: input is fed only in slices whose worst-case inflation fits
                (issue #15: one 61 KB message can inflate to 60 MiB); the rest waits in
                ``backlog``, and an EOF behind it waits too. Ignored without deflate;
                the default is what the relay allows towards a target with nothing queued.
        """
        out = Output()
        if self._ws.state is ConnectionState.CLOSED:
            self.drop_backlog()
            return out
        if not self._parser_alive:
            # After a parse failure only the EOF still matters (it ends the session).
            self.drop_backlog()
            if data is not None:
                return out
        if not self._compressed:
            if not (data and self._fast_binary(data, out)):
                self._boundary.feed(data or b"")
                self._feed(data, out)
            return out
        if data is None:
            self._eof_pending = True
        elif data:
            self._backlog = self._backlog[self._backlog_pos:] + data
            self._backlog_pos = 0
        self._feed_backlog(room, out)
        return out

    def drop_backlog(self) -> None:
        """Forget unfed input (the client is gone, or the parser is)."""
        self._backlog, self._backlog_pos = b"", 0

    def _feed_backlog(self, room: int, out: Output) -> None:
        while self.backlog and self._parser_alive and self._ws.state is not ConnectionState.CLOSED:
            # A frame held back to go on in one write (``_forward``) uses room too.
            used = out.target_size + self._binary_size
            size = (room - used - INFLATE_SLACK) // MAX_INFLATE_RATIO
            if size <= 0:
                if self._binary:  # let the relay drain it, or nothing would move
                    out.add_target(b"".join(self._binary))
                    self._binary, self._binary_size = [], 0
                return
            start = self._backlog_pos
            self._backlog_pos = min(start + size, len(self._backlog))
            self._feed(self._backlog[start:self._backlog_pos], out)
        self.drop_backlog()
        if self._eof_pending:
            self._eof_pending = False
            self._feed(None, out)

    def _fast_binary(self, data: bytes, out: Output) -> bool:
        """One complete binary frame at a frame boundary, nothing held: forwarded without
        wsproto (issue #19, ``proxy.protocol.fastframe``); False to take the usual path."""
        if (self._mode is not DataMode.BINARY or self.close_info is not None or self._binary
                or not self._parser_alive or not self._boundary.clear
                or self._ws.state is not ConnectionState.OPEN):
            return False
        payload = single_binary_frame(data)
        if payload is None or len(payload) > self._max_message_size:
            return False
        if self._reply is ReplyFrames.MIRROR:
            self._reply_text = False
        out.messages += 1
        if payload:
            out.add_target(payload)
        return True

    def _feed(self, data: bytes | None, out: Output) -> None:
        if self._ws.state is ConnectionState.CLOSED:
            return
        self._ws.receive_data(data)
        for event in self._ws.events():
            self._dispatch(event, out)

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

    def ping(self) -> bytes:
        """An empty ping (``--heartbeat``, spec §5.4)."""
        if self._ws.state is not ConnectionState.OPEN:
            return b""
        return self._ws.send(Ping())

    def close(self, code: CloseCode | int, reason: str) -> bytes:
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
        if self._reply is ReplyFrames.MIRROR:
            self._reply_text = False
        if not self._grow(len(event.data), event.message_finished, out):
            self._binary, self._binary_size = [], 0
            return
        self._forward(event.data, event.frame_finished, out)

    def _forward(self, data: bytes | bytearray, frame_finished: bool, out: Output) -> None:
        """Forward each data frame in one piece when it fits ``coalesce`` bytes.

        A frame that spans several reads would otherwise reach the target in several
        writes, and an echoing target would answer in several frames (Autobahn 1.2.6-8).
        Frames, not messages, are the unit: each fragment of a fragmented message goes on
        as soon as it is complete (issue #3: never wait for the whole message, which
        websockify does without bound, §13.4); larger frames stream on in pieces of
        ``coalesce`` bytes, so memory stays bounded.
        """
        if frame_finished and not self._binary:
            out.add_target(data)  # the common case: no copy
            return
        self._binary.append(data)
        self._binary_size += len(data)
        if frame_finished or self._binary_size >= self._coalesce:
            out.add_target(b"".join(self._binary))
            self._binary, self._binary_size = [], 0

    def _on_text(self, event: TextMessage, out: Output) -> None:
        """Stream text like binary (issue #15): wsproto decodes incrementally, so each
        chunk holds whole code points (a sequence split across frames or reads waits in
        its decoder), the encoded size is exact, and invalid UTF-8 closes 1007 with
        only valid text forwarded before it."""
        if self._reply is ReplyFrames.MIRROR:
            self._reply_text = True
        if self._mode is DataMode.BINARY and self._text_frames is TextFrames.REJECT:
            out.client_chunks.append(self.close(UNSUPPORTED_DATA, TEXT_UNSUPPORTED))
            return
        chunk = event.data.encode("utf-8")
        if not self._grow(len(chunk), event.message_finished, out):
            self._binary, self._binary_size = [], 0
            return
        if self._mode is DataMode.BINARY:
            self._forward(chunk, event.frame_finished, out)
        else:
            self._on_base64(chunk, event.message_finished, out)

    def _on_base64(self, chunk: bytes, finished: bool, out: Output) -> None:
        """Decode base64 text in whole 4-character groups as it arrives (issue #15).

        Padding ends a message: more data after an ``=`` is invalid, as it was when the
        whole message was decoded at once.
        """
        text = self._b64_held + chunk
        cut = len(text) if finished else len(text) - len(text) % 4
        part, self._b64_held = text[:cut], text[cut:]
        try:
            if part and self._b64_padded:
                raise ValueError("data after padding")
            data = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError):
            if finished:
                out.messages -= 1  # _grow counted it
            out.client_chunks.append(self.close(INVALID_DATA, INVALID_BASE64))
            return
        self._b64_padded = not finished and part.endswith(b"=")
        if finished:
            self._b64_held = b""
        if data:
            out.add_target(data)
