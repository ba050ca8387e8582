"""``--log-file`` rotation without signals and the mode of new files (proxy/observe/logsetup.py).

#16 Operations 2 §2: the handler notices a renamed or removed file by itself, at most one
``stat()`` per ``ROTATION_CHECK``; #15 Reliability 2 §3: new files are 0640 whatever the umask.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.observe import logsetup
from proxy.settings import Settings


@pytest.fixture
def umask_0() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_renamed_log_file_is_followed_by_a_new_file_at_the_path(
        tmp_path: Path, restore_logging: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """logrotate's ``create`` mode without a SIGHUP: the next line goes to a new file."""
    monkeypatch.setattr(logsetup, "ROTATION_CHECK", 0.0)  # check at every record
    path = tmp_path / "ws.log"
    logsetup.configure(Settings(log_file=str(path)))
    log = logging.getLogger("proxy.test")
    log.info("first")
    path.rename(tmp_path / "ws.log.1")
    log.info("second")
    log.info("third")
    assert (tmp_path / "ws.log.1").read_text() == "first\n"
    assert path.read_text() == "second\nthird\n"
    assert capsys.readouterr().err == "first\nsecond\nthird\n"


def test_a_removed_log_file_is_created_again(tmp_path: Path, restore_logging: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logsetup, "ROTATION_CHECK", 0.0)
    path = tmp_path / "ws.log"
    logsetup.configure(Settings(log_file=str(path)))
    log = logging.getLogger("proxy.test")
    log.info("first")
    path.unlink()
    log.info("second")
    assert path.read_text() == "second\n"


def test_the_path_is_checked_at_most_once_per_rotation_check(
        tmp_path: Path, restore_logging: None) -> None:
    """Not one stat() per record: right after a rename, lines still go to the open file."""
    path = tmp_path / "ws.log"
    logsetup.configure(Settings(log_file=str(path)))
    path.rename(tmp_path / "ws.log.1")
    logging.getLogger("proxy.test").info("soon after")
    assert logsetup.ROTATION_CHECK == 1.0
    assert (tmp_path / "ws.log.1").read_text() == "soon after\n"
    assert not path.exists()


def test_a_new_log_file_is_0640_under_umask_0(tmp_path: Path, restore_logging: None,
                                              umask_0: None, monkeypatch: pytest.MonkeyPatch,
                                              ) -> None:
    """Today's 0666 let every local user read (and rewrite) the log; rotated files too."""
    monkeypatch.setattr(logsetup, "ROTATION_CHECK", 0.0)
    path = tmp_path / "ws.log"
    logsetup.configure(Settings(log_file=str(path)))
    assert mode(path) == 0o640
    path.rename(tmp_path / "ws.log.1")
    logging.getLogger("proxy.test").info("after the rotation")
    assert path.read_text() == "after the rotation\n"
    assert mode(path) == 0o640
    path.rename(tmp_path / "ws.log.2")
    assert logsetup.reopen() == [str(path)]
    assert mode(path) == 0o640


def test_an_existing_log_files_mode_is_left_alone(tmp_path: Path, restore_logging: None,
                                                  umask_0: None) -> None:
    path = tmp_path / "ws.log"
    path.write_text("kept\n")
    path.chmod(0o604)
    logsetup.configure(Settings(log_file=str(path)))
    logging.getLogger("proxy.test").info("appended")
    assert mode(path) == 0o604
    assert path.read_text() == "kept\nappended\n"
