"""WebSocket close codes and reasons, and how a wsproto parse failure maps onto them.

Pure. The reason strings websockify 0.13.0 emits (spec §5.5, typos included) live here
and nowhere else; tests assert them byte for byte.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

# Close reasons fixed by websockify 0.13.0 (spec §5.5), verbatim.
TARGET_CLOSED = "Target closed"
# "Failed to connect to downstream server" is ``proxy.errors.TargetError.reason``: the
# handler closes with the reason of the TargetError it caught (a repeater ID names its ID).
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
INVALID_COMPRESSED = "Invalid compressed data"
IDLE_TIMEOUT = "Idle timeout"
SESSION_TIME_LIMIT = "Session time limit reached"
HEARTBEAT_TIMEOUT = "No pong within the heartbeat timeout"
RECORDING_FAILED = "Failed to open the recording"
#: ``--stall-timeout`` (issue #15): a peer accepted no byte of what was queued for it.
TARGET_STALLED = "Target stopped reading"
CLIENT_STALLED = "Client stopped reading"
#: Closes that a limit started (the handler logs them at INFO).
LIMIT_REASONS = frozenset({MESSAGE_TOO_BIG, IDLE_TIMEOUT, SESSION_TIME_LIMIT, HEARTBEAT_TIMEOUT,
                           TARGET_STALLED, CLIENT_STALLED})


class CloseCode(enum.IntEnum):
    """The RFC 6455 §7.4.1 close codes this proxy sends or meets, like wsproto's
    ``CloseReason`` (issue #17 §2); any other code a client sends stays a plain int.

    A member prints as its number everywhere, on every Python: ``str()`` and ``%s`` of an
    IntEnum member give ``CloseCode.NORMAL`` on 3.10 and ``1000`` on 3.11+, and log lines,
    JSON records and metric labels carry the number.
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL = 1006
    INVALID_DATA = 1007
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


NORMAL = CloseCode.NORMAL
GOING_AWAY = CloseCode.GOING_AWAY
PROTOCOL_ERROR = CloseCode.PROTOCOL_ERROR
UNSUPPORTED_DATA = CloseCode.UNSUPPORTED_DATA
ABNORMAL = CloseCode.ABNORMAL
INVALID_DATA = CloseCode.INVALID_DATA
TOO_BIG = CloseCode.TOO_BIG
INTERNAL_ERROR = CloseCode.INTERNAL_ERROR


def close_code(code: int) -> CloseCode | int:
    """``code`` as a ``CloseCode`` when it is one, else the plain number (a client may send
    any; wsproto hands over its own ``CloseReason`` members, which print as names on 3.10)."""
    try:
        return CloseCode(code)
    except ValueError:
        return int(code)


_INVALID_OPCODE = re.compile(r"Invalid opcode (0x[0-9a-fA-F]+)")


@dataclass(frozen=True)
class CloseInfo:
    """How a session ended: the close code and reason, and who started the close."""

    #: A ``CloseCode``, or a number RFC 6455 leaves to applications (any, as the client sent it).
    code: CloseCode | int
    reason: str
    by_client: bool

    def __post_init__(self) -> None:
        # wsproto's CloseReason members print as names on Python 3.10: ours print numbers.
        object.__setattr__(self, "code", close_code(self.code))


def protocol_error(code: int, reason: str) -> tuple[CloseCode | int, str]:
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
    if reason == "error in extension" and code == TOO_BIG:
        return TOO_BIG, MESSAGE_TOO_BIG  # a decompression bomb (proxy.protocol.deflate), issue #15
    if reason == "error in extension" and code == INVALID_DATA:
        return INVALID_DATA, INVALID_COMPRESSED  # a corrupt deflate stream
    if code == INVALID_DATA:
        # wsproto passes on Python's decoder message, whose byte position means
        # nothing to the client.
        return INVALID_DATA, INVALID_UTF8
    match = _INVALID_OPCODE.fullmatch(reason)
    if match:
        return PROTOCOL_ERROR, UNKNOWN_OPCODE % int(match.group(1), 16)
    return close_code(code), reason
