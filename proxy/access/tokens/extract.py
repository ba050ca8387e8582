"""Where the token comes from: the query (websockify), the Host header, a cookie, a
request header or the last path segment (``--token-from``).

Pure: works on the request path and headers only.
"""

from __future__ import annotations

from email.message import Message
from urllib.parse import parse_qs, unquote, urlsplit

#: ``--token-from`` kinds; ``cookie`` and ``header`` take a name (``cookie:NAME``).
TOKEN_FROM_KINDS = ("query", "cookie", "header", "path")


def parse_token_from(value: str) -> tuple[str, str]:
    """``query|path|cookie:NAME|header:NAME`` -> ``(kind, name)`` (name "" when none).

    Raises:
        ValueError: an unknown kind, a missing name, or a name where none belongs.
    """
    kind, sep, name = value.partition(":")
    if kind not in TOKEN_FROM_KINDS:
        raise ValueError(f"invalid token source {value!r} "
                         "(choose from query, path, cookie:NAME, header:NAME)")
    needs_name = kind in ("cookie", "header")
    if needs_name and not name.strip():
        raise ValueError(f"invalid token source {value!r}: {kind} needs a name ({kind}:NAME)")
    if not needs_name and sep:
        raise ValueError(f"invalid token source {value!r}: {kind} takes no name")
    return kind, name.strip()


def token_from_query(path: str) -> str | None:
    """The ``token`` query parameter as websockify reads it (spec §8.1).

    First occurrence wins, ``+`` is a space, trailing newlines are stripped, and an
    empty value counts as absent.
    """
    values = parse_qs(urlsplit(path).query, keep_blank_values=True).get("token")
    token = values[0].rstrip("\n") if values else ""
    return token or None


def token_from_host(host: str | None) -> str | None:
    """``--host-token``: the Host header up to the first colon (spec §8.1)."""
    token = (host or "").split(":", 1)[0]
    return token or None


def token_from_path(path: str) -> str | None:
    """The last segment of the request path, percent-decoded (``/vnc/tok1?x`` -> ``tok1``)."""
    segment = urlsplit(path).path.rsplit("/", 1)[-1]
    return unquote(segment) or None


def token_from_cookie(headers: Message, name: str) -> str | None:
    """The first cookie called ``name`` in the ``Cookie`` header(s).

    A value in double quotes is unquoted and percent-escapes are decoded (browsers'
    ``encodeURIComponent``). Parsed by hand: ``http.cookies`` drops every cookie of a
    header that holds one it finds malformed.
    """
    for header in headers.get_all("Cookie") or ():
        for pair in str(header).split(";"):
            key, sep, value = pair.partition("=")
            if sep and key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return unquote(value) or None
    return None


def token_from_header(headers: Message, name: str) -> str | None:
    """The value of request header ``name`` (first occurrence), stripped."""
    value = headers.get(name)
    return str(value).strip() or None if value is not None else None


def extract_token(token_from: str, host_token: bool, path: str, headers: Message) -> str | None:
    """The token of a request, or None when it carries none.

    Args:
        token_from: a ``--token-from`` value (checked by ``parse_token_from``).
        host_token: ``--host-token``; takes precedence, as it is websockify's option.
    """
    if host_token:
        return token_from_host(headers.get("Host"))
    kind, name = parse_token_from(token_from)
    if kind == "cookie":
        return token_from_cookie(headers, name)
    if kind == "header":
        return token_from_header(headers, name)
    if kind == "path":
        return token_from_path(path)
    return token_from_query(path)
