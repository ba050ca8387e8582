"""Request headers as the handler hands them to the pure modules, built from text lines."""

from __future__ import annotations

import io
from http.client import HTTPMessage, parse_headers


def headers(*lines: str) -> HTTPMessage:
    """``headers("Host: x", "X-Token: t")``: the message http.server would have parsed."""
    raw = "".join(f"{line}\r\n" for line in lines) + "\r\n"
    return parse_headers(io.BytesIO(raw.encode("latin-1")))
