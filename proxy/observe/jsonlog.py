"""``--log-format json``: every log line is one JSON object (issue #16, part 4).

``jq .`` used to fail at line 1: only the per-connection records were JSON, while the
banner, ``In exit``, reload lines and errors stayed plain text. ``logsetup.configure``
now gives every root handler (stderr, ``--log-file``, ``--syslog``) this module's
``JSONFormatter`` with ``--log-format json``, and routes what would bypass logging
(uncaught exceptions in any thread, warnings) through it. ``--log-format both`` keeps
classic lines beside the JSON session records, as before.

A line is ``{"time", "level", "logger", "message"}``, plus ``"traceback"`` (the formatted
exception) when the record has one. A session record (``proxy.observe.sessionlog``) is logged
with its fields attached (``FIELDS``) and comes out as that object, unchanged.
No I/O here but the hooks' logging.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
from types import TracebackType
from typing import Any

#: The LogRecord attribute (``extra={FIELDS: {...}}``) holding a ready JSON object.
FIELDS = "json_fields"

log = logging.getLogger("proxy")


def iso_time(timestamp: float) -> str:
    """``2026-12-06T20:04:17.123Z`` (UTC, milliseconds) for ``time.time()`` values."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(fields: dict[str, Any]) -> str:
    """One compact line: no raw newline can survive JSON string escaping."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False, default=str)


class JSONFormatter(logging.Formatter):
    """Formats every record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        ready = getattr(record, FIELDS, None)
        if isinstance(ready, dict):
            fields: dict[str, Any] = dict(ready)
        else:
            fields = {"time": iso_time(record.created), "level": record.levelname.lower(),
                      "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["traceback"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return dumps(fields)


def _uncaught(kind: type[BaseException], exc: BaseException,
              tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):  # Ctrl-C: the default hook's quiet exit
        sys.__excepthook__(kind, exc, tb)
        return
    log.error("uncaught exception: %s", exc, exc_info=(kind, exc, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:  # the default hook ignores it too
        return
    name = args.thread.name if args.thread is not None else "?"
    log.error("uncaught exception in thread %s: %s", name, args.exc_value,
              exc_info=(args.exc_type, args.exc_value or args.exc_type(),
                        args.exc_traceback))


def route_stray_output() -> None:
    """Send uncaught exceptions and warnings through logging (so they become JSON too)."""
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread
    logging.captureWarnings(True)
