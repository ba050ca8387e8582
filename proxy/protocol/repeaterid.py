"""The repeater ID block of UltraVNC's "mode II" (issue #20 §1), pure.

A VNC server that dials in (``x11vnc -connect repeater=ID:1234+host:port``, UltraVNC's
``winvnc -connect``) and a viewer that asks for it (noVNC's ``repeaterID``) each send
250 bytes first: ``ID:`` and the ID, padded with NUL bytes. Bytes after the first NUL
are ignored, as the UltraVNC repeater does (some senders do not zero their buffer).
"""

from __future__ import annotations

import re

#: The length of the block, fixed by the UltraVNC repeater.
BLOCK_SIZE = 250
PREFIX = b"ID:"
#: What an ID may hold: the repeater's IDs are numbers; names are common too. No spaces,
#: no control characters, so an ID is safe in a log line and in a token.
_ID = re.compile(r"[A-Za-z0-9._~-]{1,%d}" % (BLOCK_SIZE - len(PREFIX)))


class BadRepeaterId(ValueError):
    """The block is not ``ID:`` and a valid ID; the message says why (for the log)."""


def parse_block(block: bytes) -> str:
    """The ID in a complete 250-byte block.

    Raises:
        BadRepeaterId: a short block, no ``ID:`` prefix, or an empty or invalid ID.
    """
    if len(block) != BLOCK_SIZE:
        raise BadRepeaterId(f"short ID block ({len(block)} of {BLOCK_SIZE} bytes)")
    if not block.startswith(PREFIX):
        raise BadRepeaterId("no ID: prefix")
    raw = block[len(PREFIX):].split(b"\0", 1)[0]
    text = raw.decode("ascii", "replace")
    if not valid_id(text):
        raise BadRepeaterId(f"invalid ID {text[:40]!r}")
    return text


def valid_id(text: str) -> bool:
    """Whether ``text`` may be a repeater ID (also for the ``reverse:`` token form)."""
    return _ID.fullmatch(text) is not None


def make_block(repeater_id: str) -> bytes:
    """The 250-byte block for ``repeater_id`` (what x11vnc and noVNC send)."""
    if not valid_id(repeater_id):
        raise BadRepeaterId(f"invalid ID {repeater_id[:40]!r}")
    return (PREFIX + repeater_id.encode("ascii")).ljust(BLOCK_SIZE, b"\0")
