"""proxy.process.daemon: the --pid-file helpers (issue 10)."""

from __future__ import annotations

import os
from pathlib import Path

from proxy.process import daemon


def test_pid_file_helpers(tmp_path: Path) -> None:
    path = str(tmp_path / "x.pid")
    daemon.write_pid_file(path)
    assert Path(path).read_text() == f"{os.getpid()}\n"
    Path(path).write_text("1\n")  # a successor's file stays
    daemon.remove_pid_file(path)
    assert Path(path).exists()
    daemon.write_pid_file(path)
    daemon.remove_pid_file(path)
    assert not Path(path).exists()
