"""Request headers as the handler hands them to the pure modules, built from text lines,
and the token-to-target step the handler runs on them."""

from __future__ import annotations

import io
from email.message import Message
from http.client import HTTPMessage, parse_headers
from typing import Any

from proxy.access.resolve import request_token, target_for_token
from proxy.settings import Settings, Target


def headers(*lines: str) -> HTTPMessage:
    """``headers("Host: x", "X-Token: t")``: the message http.server would have parsed."""
    raw = "".join(f"{line}\r\n" for line in lines) + "\r\n"
    return parse_headers(io.BytesIO(raw.encode("latin-1")))


def resolve_target(settings: Settings, plugin: Any, path: str, headers: Message) -> Target:
    """What the handler does with a request's token: extract it (``--token-from``), then
    ask the plugin; the configured target without a plugin."""
    token = request_token(settings, path, headers) if plugin is not None else None
    return target_for_token(settings, plugin, token)
