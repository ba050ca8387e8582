"""The ``--record`` writer: one file per WebSocket session in websockify's format (spec §7.4).

Rule: this module only writes recordings; reading them is ``proxy.observe.replay``'s job, written
against the format rather than against this writer, so each checks the other.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from typing import Any

#: First and last lines of a recording, verbatim (spec §7.4).
HEADER = "var VNC_frame_data = [\n"
FOOTER = "'EOF'];\n"
#: Recordings hold session data: only the owner may read them. websockify creates them
#: with the umask, which ``--daemon`` sets to 0 (world-writable, spec §13.15); we don't.
RECORD_MODE = 0o600
#: Why an existing ``PREFIX.N`` is refused (#15 Reliability 2): another user may have
#: planted it to make us truncate what it leads to. The session closes 1011, logged.
SYMLINK_REFUSED = "is a symbolic link, not followed"
NOT_REGULAR = "is not a regular file, not recorded to"
LINKED_REFUSED = "has other hard links, not truncated"

LogMessage = Callable[..., None]


def escape(data: bytes) -> str:
    """websockify's data encoding: Latin-1 → ``unicode_escape``, then ``'`` → ``\\'``."""
    return data.decode("latin-1").encode("unicode_escape").decode("ascii").replace("'", "\\'")


def entry(client_to_target: bool, ms: int, data: bytes) -> str:
    """One line: ``'}<ms>}<data>',`` (client → target) or ``'{<ms>{<data>',`` (target → client)."""
    mark = "}" if client_to_target else "{"
    return f"'{mark}{ms}{mark}{escape(data)}',\n"


def open_recording(path: str) -> int:
    """Create ``path`` 0600, or empty an earlier run's recording there; return its fd.

    websockify opens with ``"w+"``, following a symlink planted at ``PREFIX.N`` and
    truncating its target (#15 Reliability 2). Here the last component is never followed
    (``O_NOFOLLOW``), and what was opened must be a regular file with no other hard link
    before it is emptied (``ftruncate`` after the check rather than ``O_TRUNC``, so a
    refused file is left intact). ``O_NONBLOCK`` keeps a planted FIFO from blocking us.
    Session numbers restart at 1 in every process, so an earlier run's recording is
    overwritten, as websockify does.

    Raises:
        OSError: the file cannot be created, or is refused (a symlink, not a regular file,
            hard-linked elsewhere).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, RECORD_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise OSError(errno.ELOOP, SYMLINK_REFUSED, path) from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EEXIST, NOT_REGULAR, path)
        if st.st_nlink > 1:
            raise OSError(errno.EMLINK, LINKED_REFUSED, path)
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Recorder:
    """A ``relay.Tap`` writing ``<prefix>.<session_id>`` (spec §7.4).

    Entries are per read, not per WebSocket message as in websockify: a client read yields
    the payload bytes it forwarded to the target (skipped when empty), a target read the
    bytes that became one frame. ``close()`` writes the ``'EOF'];`` line; call it once the
    relay has ended (``ProxyRequestHandler._proxy`` does, in a ``finally``).
    """

    def __init__(
        self,
        prefix: str,
        session_id: int,
        log_message: LogMessage | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = f"{prefix}.{session_id}"
        if log_message is not None:
            log_message("opening record file: %s", self.path)  # spec §3.3
        fd = open_recording(self.path)
        # Line-buffered, so `tail -f` shows a live session entry by entry.
        self._file = open(fd, "w", encoding="ascii", newline="\n", buffering=1)
        self._clock = clock
        self._start = clock()
        self._log_message = log_message
        self._write(HEADER)

    def _ms(self) -> int:
        """Milliseconds since the session started (websockify: ``int(time*1000) - start``)."""
        return int((self._clock() - self._start) * 1000)

    def from_client(self, data: bytes, messages: int) -> None:
        if data and not self._file.closed:
            self._write(entry(True, self._ms(), data))

    def from_target(self, data: bytes) -> None:
        if data and not self._file.closed:
            self._write(entry(False, self._ms(), data))

    def sent_to_target(self, complete: bool) -> None:
        """Writes are not recorded (websockify records data, not socket events)."""

    def sent_to_client(self, complete: bool) -> None:
        """Writes are not recorded."""

    def close(self) -> None:
        """Terminate the recording with ``'EOF'];`` and close it; idempotent."""
        if self._file.closed:
            return
        if self._write(FOOTER):
            self._close_file()

    def _write(self, text: str) -> bool:
        """Write ``text``; on a failure (ENOSPC, EIO) stop recording, log it once and
        return False: the session itself goes on (websockify's handler died instead)."""
        try:
            self._file.write(text)
        except OSError as exc:
            if self._log_message is not None:
                self._log_message("recording to %s stopped: %s", self.path, exc)
            self._close_file()
            return False
        return True

    def _close_file(self) -> None:
        try:
            self._file.close()
        except OSError:
            # The buffered rest cannot be written either; close() still freed the fd.
            pass

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
