"""Token plugins backed by the file system: ``ReadOnlyTokenFile``/``TokenFile``,
``TokenFileName`` and ``UnixDomainSocketDirectory`` (spec §8.2, §8.3, §8.7).

Reads files only; never touches our sockets. Paths are made absolute when the plugin is
built, so nothing depends on the working directory later (spec §13.14).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from proxy.errors import StartupError
from proxy.access.tokens.base import BasePlugin, split_target

log = logging.getLogger("proxy.tokens.files")

#: A file modified this close to when we read it may change again within the same mtime
#: tick, so it is read again on the next lookup (git's "racy" rule).
RACY_WINDOW = 2.0  # seconds
# websockify splits a line on "a colon followed by one whitespace character" (spec §8.2).
_LINE_SPLIT = re.compile(r":\s")

Signature = tuple[int, int, int]  # (st_mtime_ns, st_size, st_ino)
TargetPair = tuple[str, str]


@dataclass
class _FileEntry:
    """One token file as last read: its stat signature, text and parsed table."""

    signature: Signature
    read_at: float  # time.time() when the text was read
    text: str
    targets: dict[str, TargetPair] = field(default_factory=dict)


def parse_token_line(line: str) -> tuple[str, TargetPair] | None:
    """``token: host:port`` -> ``(token, (host, port))``; None for a syntax error.

    websockify 0.13.0 rules (spec §8.2): split on ``:\\s`` into exactly two parts, the
    target split at its last colon, ``unix_socket:PATH`` for a Unix target. The port may
    be a service name (``host:http``), as websockify hands it to the resolver (#18); one
    that cannot be used is answered 502 at lookup (``proxy.access.resolve``). Beyond websockify,
    ``[::1]:5900`` loses its brackets.
    """
    parts = _LINE_SPLIT.split(line)
    if len(parts) != 2:
        return None
    target = split_target(parts[1].strip())
    if target is None:
        return None
    host, port = target
    if host != "unix_socket":
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return parts[0], (host, port)


def parse_token_text(text: str, name: str) -> dict[str, TargetPair]:
    """The table of one file; bad lines are logged with the file's name and line number.

    websockify names the ``--token-source`` argument and counts lines across all files of
    a directory (spec §13.18); we name the file and its own line.
    """
    targets: dict[str, TargetPair] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()  # 0.13.0: stripped, blank and "#" lines skipped (spec §14)
        if not line or line.startswith("#"):
            continue
        parsed = parse_token_line(line)
        if parsed is None:
            log.error("Syntax error in %s on line %d", name, number)
            continue
        targets[parsed[0]] = parsed[1]  # duplicates: the last one read wins
    return targets


def warn_if_unreadable(path: str) -> None:
    """Log one warning at start when the token source ``path`` cannot be read now.

    The server starts anyway, as websockify does (the file may appear later; each lookup
    logs its own error until then), but a typo in ``--token-source`` should not wait for
    the first connection to show (#16 Operations 2). A directory must be listable; a file
    is opened without blocking (a FIFO) and closed unread.
    """
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
    except OSError as exc:
        log.warning("Token source not readable at start: %s: [Errno %s] %s", path,
                    exc.errno, exc.strerror)


def _signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class ReadOnlyTokenFile(BasePlugin):
    """``token: host:port`` lines from a file or from every regular file of a directory.

    Shared by all threads: the table is cached under a lock and a file is read again
    only when its mtime, size or inode changed (or it changed very recently), so an
    edited, added or removed file is picked up without a restart. A syntax error is
    logged once per version of a file, not on every connection (spec §13.18).
    websockify's ``ReadOnlyTokenFile`` read its file once per forked child, i.e. once
    per connection (spec §8.1), so it behaves like ``TokenFile`` here.
    Directory entries are read in name order (websockify: ``os.listdir`` order).
    """

    def __init__(self, src: str | None = None) -> None:
        super().__init__(src)
        if not src:
            raise StartupError(f"{type(self).__name__} needs --token-source FILE|DIR")
        self._path = os.path.abspath(src)
        warn_if_unreadable(self._path)
        self._lock = threading.Lock()
        self._files: dict[str, _FileEntry] = {}  # guarded by _lock
        self._table: dict[str, TargetPair] = {}  # guarded by _lock
        self._errors: dict[str, str] = {}  # path -> read error logged; guarded by _lock

    def lookup(self, token: str) -> Any:
        with self._lock:
            self._refresh()
            return self._table.get(token)

    def reload(self) -> str:
        """Read every file again now (SIGHUP), reporting errors afresh.

        Returns:
            What was reloaded, for the runner's one SIGHUP line (#16).
        """
        with self._lock:
            self._files, self._errors = {}, {}
            self._refresh()
            count = len(self._table)
        return f"tokens from {self._path} ({count} tokens)"

    def _list_files(self) -> list[str]:
        if not os.path.isdir(self._path):
            return [self._path]
        try:
            names = sorted(os.listdir(self._path))
        except OSError as exc:
            self._report(self._path, f"Error reading token directory {self._path}: {exc}")
            return []
        self._errors.pop(self._path, None)
        # HEAD skips what is not a regular file; 0.13.0 fails on a subdirectory (§14).
        return [path for path in (os.path.join(self._path, n) for n in names)
                if os.path.isfile(path)]

    def _refresh(self) -> None:
        assert self._lock.locked()
        now = time.time()
        files = {}
        changed = False
        for path in self._list_files():
            entry = self._files.get(path)
            fresh = self._load(path, entry, now)
            changed |= fresh is not entry
            if fresh is not None:
                files[path] = fresh
        if changed or files.keys() != self._files.keys():
            self._files = files
            self._table = {tok: target for entry in files.values()
                           for tok, target in entry.targets.items()}

    def _load(self, path: str, entry: _FileEntry | None, now: float) -> _FileEntry | None:
        """The entry for ``path``: the cached one if unchanged, else read (and parsed)."""
        signature = _signature(path) or (0, 0, 0)
        if entry is not None and signature == entry.signature and \
                entry.read_at - signature[0] / 1e9 > RACY_WINDOW:
            return entry
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as exc:
            self._report(path, f"Error reading token file {path}: {exc}")
            return None
        self._errors.pop(path, None)
        if entry is not None and entry.text == text:
            return _FileEntry(signature, now, text, entry.targets)
        return _FileEntry(signature, now, text, parse_token_text(text, path))

    def _report(self, path: str, message: str) -> None:
        """Log a read error once, until ``path`` can be read again."""
        if self._errors.get(path) != message:
            self._errors[path] = message
            log.error("%s", message)


class TokenFile(ReadOnlyTokenFile):
    """websockify's re-reading variant; the shared cache already notices every change."""


class TokenFileName(BasePlugin):
    """The token names a file in the source directory; its content is ``host:port`` (§8.3).

    Only the token's last path component is used, as websockify does. Beyond it, the
    target is split at its *last* colon (so ``::1:5900`` works) and ``unix_socket:PATH``
    keeps colons in PATH.
    """

    def __init__(self, src: str | None = None) -> None:
        super().__init__(src)
        if not src or not os.path.isdir(src):
            raise StartupError(f"TokenFileName plugin requires a directory: {src}")
        self._dir = os.path.abspath(src)

    def lookup(self, token: str) -> Any:
        name = os.path.basename(token)
        path = os.path.join(self._dir, name)
        if name in ("", ".", "..") or not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read().strip()
        except OSError as exc:
            log.error("Error reading token file %s: %s", path, exc)
            return None
        target = split_target(text)
        if target is None:
            log.error("Syntax error in %s on line 1", path)
        return target


def is_plain_name(token: str) -> bool:
    """A single path component naming an entry of a directory (no ``/``, ``..``, NUL)."""
    return bool(token) and token not in (".", "..") and "/" not in token and "\0" not in token


class UnixDomainSocketDirectory(BasePlugin):
    """The token names a Unix socket in the source directory (spec §8.7).

    websockify checks containment with a string prefix on an un-normalised path, so
    ``../other/vnc.sock`` escapes the directory (§13.15); here a token must be a plain
    file name: ``..``, slashes and absolute paths are refused.
    """

    def __init__(self, src: str | None = None) -> None:
        super().__init__(src)
        if not src:
            raise StartupError("UnixDomainSocketDirectory needs --token-source DIR")
        self._dir = os.path.abspath(src)
        warn_if_unreadable(self._dir)

    def lookup(self, token: str) -> Any:
        if not is_plain_name(token):
            log.warning("Error finding unix domain socket: token %r is not a plain name "
                        "in %s; refused", token, self._dir)
            return None
        path = os.path.join(self._dir, token)
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                return None
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("Error finding unix domain socket: %s", exc)
            return None
        return ["unix_socket", path]
