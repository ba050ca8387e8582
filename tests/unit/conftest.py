"""Fixtures shared by the unit tests."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from proxy.observe import logsetup


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger, ``logsetup``'s state and the exception hooks back as they were
    (pytest's own handlers included) after a test that configures logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logsetup._installed.clear()
    logsetup._json_lines = False
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)
