"""Value types of the command-line options: parse one string, or fail with argparse's error.

Pure (no I/O). ``optparse_int`` keeps websockify's optparse integer rules (spec §2.4);
the others are our options' formats.
"""

from __future__ import annotations

import argparse
from typing import Any

from proxy.access.tokens import parse_token_from
from proxy.protocol.forwarded import parse_trusted


def optparse_int(value: str) -> int:
    """optparse's "int": ``0x`` hex, ``0b`` binary, a leading 0 octal (``--heartbeat 010`` = 8)."""
    text = value.strip().lower()
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    if digits.startswith("0x"):
        radix = 16
    elif digits.startswith("0b"):
        radix, digits = 2, digits[2:] or "0"
    elif digits.startswith("0"):
        radix = 8
    else:
        radix = 10
    try:
        return int(sign + digits, radix)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer value: {value!r}") from None


def choice(*choices: str) -> Any:
    """A type checking membership with optparse's message (argparse's varies by version)."""
    def check(value: str) -> str:
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {listed})")
        return value
    return check


def positive_int(value: str) -> int:
    """An ``optparse_int`` greater than 0."""
    number = optparse_int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {value!r}")
    return number


def seconds(value: str) -> float:
    """A duration in seconds, 0 or more (fractions allowed)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {value!r}")
    return number


def token_from_type(value: str) -> str:
    """``--token-from``: checked by ``proxy.access.tokens.parse_token_from``."""
    try:
        parse_token_from(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def trusted_type(value: str) -> tuple[Any, ...]:
    """``--trusted-proxy``: addresses and networks (``proxy.protocol.forwarded.parse_trusted``)."""
    try:
        return parse_trusted(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def url_path_type(value: str) -> str:
    """``--metrics-path``/``--health-path``: an absolute URL path."""
    if not value.startswith("/"):
        raise argparse.ArgumentTypeError(f"must start with /: {value!r}")
    return value


def header_type(value: str) -> tuple[str, str]:
    """``--response-header 'Name: value'`` (RFC 9110 field name; no CR/LF in the value)."""
    name, colon, text = value.partition(":")
    name, text = name.strip(), text.strip()
    if not colon or not name or any(c not in _TCHAR for c in name):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {value!r}")
    if any(c in text for c in "\r\n\0"):
        raise argparse.ArgumentTypeError(f"header value contains a line break: {value!r}")
    # RFC 9110 field-value: visible characters, Latin-1 (obs-text), spaces and tabs. Any
    # other control character used to pass here and fail every 101 with a traceback.
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F or ord(c) > 0xFF for c in text):
        raise argparse.ArgumentTypeError(
            f"header value contains a control or non-Latin-1 character: {value!r}")
    return name, text


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789"
                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
