"""Plain GET/HEAD: ``--web DIR`` static files and the ``--diagnostics`` pages (spec §4.2, §4.5).

``http.server.SimpleHTTPRequestHandler``'s semantics, as websockify serves them, rooted at
DIR **without chdir** (websockify chdirs, which breaks relative token paths, spec §13.14):
index files, ``301`` for a directory without ``/``, listings (``404 Not Found`` with
``--file-only``), ``404 File not found``, ``If-Modified-Since`` → ``304``, HEAD. No request
path climbs out of DIR, and neither does a symlink unless ``--web-follow-symlinks``.

Layers: ``plan`` is pure (request path + settings → what to answer); ``respond`` does the
file I/O and writes through the handler. The handler runs ``--web-auth`` before ``respond``
(HandshakeError → HTTP answer stays in ``ProxyRequestHandler._reject``).
"""

from __future__ import annotations

import datetime
import email.utils
import html
import json
import mimetypes
import os
import posixpath
import sys
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler as Handler
from importlib import resources
from typing import BinaryIO

from proxy import __version__
from proxy.settings import Settings

#: Default ``--diagnostics-path``.
DIAGNOSTICS_PATH = "/websockify/"
#: Reason phrase of a missing file (http.server's, spec §4.5).
FILE_NOT_FOUND = "File not found"
#: Files under ``proxy/serve/static`` served below the diagnostics path; "" is the page itself.
BUILTIN_FILES = {
    "": "diagnostics.html",
    "diagnostics.html": "diagnostics.html",
    "diagnostics.js": "diagnostics.js",
    "websockify.js": "websockify.js",
    "sessions.js": "sessions.js",  # the live sessions view (issue #21)
}
#: Types that must be right whatever the system's mime.types says: browsers refuse ES
#: modules and ``WebAssembly.instantiateStreaming`` with a wrong Content-Type.
CONTENT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".css": "text/css",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/vnd.microsoft.icon",
    ".gz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
}
_CHUNK = 64 * 1024  # bytes per write


# -- what to answer (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Redirect:
    """``301`` to ``location`` (a directory asked for without its ``/``)."""

    location: str


@dataclass(frozen=True)
class Builtin:
    """A file of ``proxy/serve/static`` (``name``), or the page's ``config.json`` (name None)."""

    name: str | None


@dataclass(frozen=True)
class LocalPath:
    """A path under ``--web DIR``: a file, a directory (index or listing) or nothing."""

    path: str
    #: The request path ended with ``/`` (a file asked for as a directory is 404).
    trailing_slash: bool


@dataclass(frozen=True)
class NotFound:
    """``404`` with http.server's reason phrase for a missing file."""


@dataclass(frozen=True)
class NotServed:
    """Neither ``--web`` nor a built-in path: ``405`` as without ``--web`` (spec §4.2)."""


Plan = Redirect | Builtin | LocalPath | NotFound | NotServed


def enabled(settings: Settings) -> bool:
    """Plain GET/HEAD are answered by this module (else 405, spec §4.2)."""
    return settings.web is not None or settings.diagnostics_path is not None


def url_path(target: str) -> str:
    """The path part of a request target, without query and fragment (still %-encoded)."""
    return target.split("?", 1)[0].split("#", 1)[0]


def plan(settings: Settings, target: str) -> Plan:
    """What a plain GET/HEAD of ``target`` gets; the built-in paths come first."""
    path = url_path(target)
    prefix = settings.diagnostics_path
    if prefix is not None:
        if path == prefix.rstrip("/"):
            return Redirect(_with_slash(target))
        if path.startswith(prefix):
            name = urllib.parse.unquote(path[len(prefix):])
            if name == "config.json":
                return Builtin(None)
            if name in BUILTIN_FILES:
                return Builtin(BUILTIN_FILES[name])
            return NotFound()
    if settings.web is None:
        return NotServed()
    local = translate_path(settings.web, path)
    if local is None:
        return NotFound()
    return LocalPath(local, path.rstrip().endswith("/"))


def translate_path(root: str, path: str) -> str | None:
    """The file under ``root`` that the %-encoded ``path`` names; None if it can name none.

    Decodes once (``%252e`` stays the literal name ``%2e``), refuses NUL, backslashes and
    undecodable bytes, and normalises ``..`` away as http.server does (``/../x`` is
    ``/x``); what remains cannot leave ``root`` lexically. Symlinks are checked later.
    """
    try:
        decoded = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\x00" in decoded or "\\" in decoded:
        return None
    words = [word for word in posixpath.normpath(decoded).split("/") if word not in ("", ".")]
    if ".." in words:
        return None  # a relative request target such as "../x"
    full = os.path.join(root, *words)
    if os.path.commonpath([root, full]) != root:
        return None  # pragma: no cover - unreachable after the checks above
    return full


def content_type(path: str) -> str:
    """The Content-type of a file: our table, then ``mimetypes``, then octet-stream."""
    ext = posixpath.splitext(path)[1].lower()
    if ext in CONTENT_TYPES:
        return CONTENT_TYPES[ext]
    guess, _ = mimetypes.guess_type(path)
    return guess or "application/octet-stream"


def not_modified(if_modified_since: str | None, if_none_match: str | None,
                 mtime: float) -> bool:
    """http.server's ``If-Modified-Since`` rule (ignored with ``If-None-Match``)."""
    if if_modified_since is None or if_none_match is not None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, IndexError, OverflowError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=datetime.timezone.utc)
    if since.tzinfo is not datetime.timezone.utc:
        return False
    modified = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc)
    return modified.replace(microsecond=0) <= since


def diagnostics_config(settings: Settings) -> dict[str, object]:
    """What the diagnostics page is told about this server (``config.json``)."""
    return {
        "version": __version__,
        "target": None if settings.token_plugin else settings.target_display,
        "tokenPlugin": settings.token_plugin,
        "tokenFrom": settings.token_from,
        "hostToken": settings.host_token,
        "textFrames": settings.text_frames.value,
        "heartbeat": settings.heartbeat,
        "authPlugin": settings.auth_plugin,
        # --admin-path: the page's Sessions view reads it (issue #21); null = hidden.
        "adminPath": settings.admin_path,
    }


def listing_html(target: str, names: list[str], is_dir: dict[str, bool],
                 is_link: dict[str, bool]) -> bytes:
    """http.server's directory listing page for ``names``."""
    try:
        display = urllib.parse.unquote(url_path(target), errors="surrogatepass")
    except UnicodeDecodeError:
        display = urllib.parse.unquote(url_path(target))
    title = f"Directory listing for {html.escape(display, quote=False)}"
    encoding = sys.getfilesystemencoding()
    lines = ["<!DOCTYPE HTML>", '<html lang="en">', "<head>", f'<meta charset="{encoding}">',
             f"<title>{title}</title>\n</head>", f"<body>\n<h1>{title}</h1>", "<hr>\n<ul>"]
    for name in sorted(names, key=str.lower):
        shown = link = name
        if is_dir[name]:
            shown = link = name + "/"
        if is_link[name]:
            shown = name + "@"
        lines.append('<li><a href="%s">%s</a></li>' % (
            urllib.parse.quote(link, errors="surrogatepass"), html.escape(shown, quote=False)))
    lines.append("</ul>\n<hr>\n</body>\n</html>\n")
    return "\n".join(lines).encode(encoding, "surrogateescape")


def _with_slash(target: str) -> str:
    parts = urllib.parse.urlsplit(target)
    return urllib.parse.urlunsplit((parts[0], parts[1], parts[2] + "/", parts[3], parts[4]))


# -- answering (I/O) ------------------------------------------------------------------------


def respond(handler: Handler, settings: Settings, head: bool) -> None:
    """Answer a plain GET (``head`` False) or HEAD whose ``plan`` is not ``NotServed``."""
    answer = plan(settings, handler.path)
    if isinstance(answer, Redirect):
        _redirect(handler, answer.location)
    elif isinstance(answer, Builtin):
        _builtin(handler, settings, answer, head)
    elif isinstance(answer, LocalPath):
        _local(handler, answer, settings, head)
    elif isinstance(answer, NotFound):
        handler.send_error(HTTPStatus.NOT_FOUND, FILE_NOT_FOUND)
    else:
        handler.send_error(HTTPStatus.METHOD_NOT_ALLOWED)


def _redirect(handler: Handler, location: str) -> None:
    handler.send_response(HTTPStatus.MOVED_PERMANENTLY)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def _send_bytes(handler: Handler, data: bytes, ctype: str, head: bool,
                extra: tuple[tuple[str, str], ...] = ()) -> None:
    handler.send_response(HTTPStatus.OK)
    handler.send_header("Content-type", ctype)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in extra:
        handler.send_header(name, value)
    handler.end_headers()
    if not head:
        _write(handler, data)


def _write(handler: Handler, data: bytes) -> None:
    handler.wfile.write(data)


def _builtin(handler: Handler, settings: Settings, answer: Builtin, head: bool) -> None:
    no_cache = (("Cache-Control", "no-cache"),)
    if answer.name is None:
        body = json.dumps(diagnostics_config(settings), indent=1).encode()
        _send_bytes(handler, body, "application/json", head, no_cache)
        return
    data = resources.files("proxy.serve").joinpath("static", answer.name).read_bytes()
    _send_bytes(handler, data, content_type(answer.name), head, no_cache)


def _local(handler: Handler, answer: LocalPath, settings: Settings, head: bool) -> None:
    path = _confined(settings, answer.path)
    if path is None:
        handler.send_error(HTTPStatus.NOT_FOUND, FILE_NOT_FOUND)
        return
    shown = answer.path  # the name asked for decides the Content-type, as in http.server
    if os.path.isdir(path):
        if not answer.trailing_slash:
            _redirect(handler, _with_slash(handler.path))
            return
        for index in ("index.html", "index.htm"):
            if os.path.isfile(os.path.join(path, index)):
                shown = index
                path = _confined(settings, os.path.join(path, index)) or ""
                break
        else:
            _listing(handler, path, settings.file_only, head)
            return
    elif answer.trailing_slash:
        path = ""  # a file asked for as a directory is 404 (CPython issue 17324)
    if not os.path.isfile(path):
        # Also anything that is not a regular file (a FIFO would block the open).
        handler.send_error(HTTPStatus.NOT_FOUND, FILE_NOT_FOUND)
        return
    try:
        file = open(path, "rb")
    except OSError:
        handler.send_error(HTTPStatus.NOT_FOUND, FILE_NOT_FOUND)
        return
    with file:
        _send_file(handler, file, shown, head)


def _confined(settings: Settings, path: str) -> str | None:
    """``path`` with its symlinks resolved, or None when they lead out of ``--web DIR``.

    websockify follows every symlink: a directory link to ``/`` under DIR served
    ``/etc/shadow`` (#15 Reliability 2). ``--web-follow-symlinks`` restores that; by
    default a link is served only when its resolved path stays inside DIR (itself
    resolved, so DIR may be a link). The resolved path is what gets opened.
    """
    if settings.web_follow_symlinks:
        return path
    root = os.path.realpath(settings.web or "/")
    real = os.path.realpath(path)
    return real if os.path.commonpath([root, real]) == root else None


def _send_file(handler: Handler, file: BinaryIO, path: str, head: bool) -> None:
    stat = os.fstat(file.fileno())
    if not_modified(handler.headers.get("If-Modified-Since"),
                    handler.headers.get("If-None-Match"), stat.st_mtime):
        handler.send_response(HTTPStatus.NOT_MODIFIED)
        handler.end_headers()
        return
    handler.send_response(HTTPStatus.OK)
    handler.send_header("Content-type", content_type(path))
    handler.send_header("Content-Length", str(stat.st_size))
    handler.send_header("Last-Modified", handler.date_time_string(stat.st_mtime))
    handler.end_headers()
    if head:
        return
    while chunk := file.read(_CHUNK):
        _write(handler, chunk)


def _listing(handler: Handler, path: str, file_only: bool, head: bool) -> None:
    if file_only:
        handler.send_error(HTTPStatus.NOT_FOUND)  # "Not Found" (websockify, spec §4.5)
        return
    try:
        names = os.listdir(path)
    except OSError:
        handler.send_error(HTTPStatus.NOT_FOUND, "No permission to list directory")
        return
    full = {name: os.path.join(path, name) for name in names}
    body = listing_html(handler.path, names, {n: os.path.isdir(p) for n, p in full.items()},
                        {n: os.path.islink(p) for n, p in full.items()})
    encoding = sys.getfilesystemencoding()
    _send_bytes(handler, body, f"text/html; charset={encoding}", head)
