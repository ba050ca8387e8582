"""Units of issue #16 part 4: ``--log-format json`` makes every line one JSON object
(proxy.observe.jsonlog, proxy.observe.logsetup), and
probes get no session record by default (sessionlog)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from typing import Any

import pytest

from proxy.observe import jsonlog, logsetup, sessionlog
from proxy.settings import Settings


def lines(text: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(obj, dict) for obj in parsed)
    return parsed


def test_a_plain_line_and_a_traceback(restore_logging: None,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(Settings(log_format="json", verbose=True))  # in the test: capsys
    log = logging.getLogger("proxy.test")
    log.info("two\nlines")
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("it failed")
    first, second = lines(capsys.readouterr().err)
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "info", "logger": "proxy.test", "message": "two\nlines"}
    assert second["level"] == "error" and second["message"] == "it failed"
    assert second["traceback"].startswith("Traceback (most recent call last):\n")
    assert second["traceback"].endswith("ValueError: bad value")


def test_a_session_record_keeps_its_own_fields(restore_logging: None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(Settings(log_format="json", verbose=True))  # in the test: capsys
    session = sessionlog.Session(peer="192.0.2.1", peer_port=4000, status=101)
    sessionlog.emit(session)
    (obj,) = lines(capsys.readouterr().err)
    assert obj == sessionlog.record(session, now=session.started_monotonic + obj["duration"])
    assert "message" not in obj


def test_an_uncaught_exception_in_a_thread_is_one_json_line(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(Settings(log_format="json", verbose=True))  # in the test: capsys

    def fail() -> None:
        raise RuntimeError("thread broke")
    thread = threading.Thread(target=fail, name="worker-x")
    thread.start()
    thread.join(5)
    (obj,) = lines(capsys.readouterr().err)
    assert obj["message"] == "uncaught exception in thread worker-x: thread broke"
    assert obj["traceback"].endswith("RuntimeError: thread broke")


def test_a_log_file_that_cannot_be_written_is_reported_in_json(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(Settings(log_format="json", verbose=True))  # in the test: capsys
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    handler = logsetup.ReopenableFileHandler("/dev/full")  # every write: ENOSPC
    try:
        handler.emit(logging.makeLogRecord({"msg": "lost", "levelno": logging.INFO}))
    finally:
        with contextlib.suppress(OSError):  # its close() flushes into the full device too
            handler.close()
    (obj,) = lines(capsys.readouterr().err)
    assert obj["message"] == ("cannot write to log file /dev/full: [Errno 28] No space left "
                              "on device; dropping its records")
    assert obj["level"] == "error"


def test_classic_stays_plain(capsys: pytest.CaptureFixture[str]) -> None:
    assert logsetup._stderr_line("note") == "note\n"


@pytest.mark.parametrize(("session", "probe"), [
    (sessionlog.Session(peer="p", silent=True), True),
    (sessionlog.Session(peer="p", path="/healthz?full=1"), True),
    (sessionlog.Session(peer="p", path="/metrics"), True),
    (sessionlog.Session(peer="p", path="/"), False),
    (sessionlog.Session(peer="p"), False),  # sent bytes, never a whole request line
])
def test_probes_are_port_probes_and_the_built_in_paths(session: sessionlog.Session,
                                                       probe: bool) -> None:
    settings = Settings(health_path="/healthz", metrics_path="/metrics")
    assert sessionlog.is_probe(session, settings) is probe


def test_jsonlog_lines_have_no_raw_newline() -> None:
    assert "\n" not in jsonlog.dumps({"a": "x\ny", "b": object()})
