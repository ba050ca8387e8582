"""The repeater end to end with real parts (issue #20 §1): x11vnc on Xvfb dials in with a
repeater ID, noVNC in headless Chromium connects with that ID, once by token and once by
its ``repeaterID`` setting, and draws the desktop (pixels asserted, a key typed).

Debian's x11vnc, xvfb, xterm, x11-xserver-utils, chromium and novnc (``scripts/test``
installs them); without them the tests skip, naming what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.integration.test_browser import (DEBIAN_NOVNC, ROOT_COLOUR, SCREEN,
                                            _assert_desktop_drawn_and_typing_seen,
                                            _need_chromium, _novnc, _read_display, _stop,
                                            start_xterm)
from tests.support.process import free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@dataclass
class Screen:
    display: int
    env: dict[str, str]


@pytest.fixture
def screen(tmp_path: Path) -> Iterator[Screen]:
    """Xvfb on a free display with an xterm that reads a colour (as the Xvnc desktop of
    test_browser.py: typing a colour and Enter turns the root window that colour).

    The root colour is set by ``_paint_root`` once x11vnc runs: x11vnc 0.9.16 does not see
    a root background set before it started (its picture stays black).
    """
    for tool, package in (("Xvfb", "xvfb"), ("x11vnc", "x11vnc"),
                          ("xsetroot", "x11-xserver-utils"), ("xterm", "xterm")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing: apt-get install {package}")
    log = tmp_path / "xvfb.log"
    read_fd, write_fd = os.pipe()
    with open(log, "wb") as out:
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp",
             "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24"],
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True)
    os.close(write_fd)
    xterm: subprocess.Popen[bytes] | None = None
    try:
        display = _read_display(read_fd, xvfb, log)
        env = {**os.environ, "DISPLAY": f":{display}"}
        xterm = start_xterm(env, tmp_path / "xterm.log")
        yield Screen(display, env)
    finally:
        os.close(read_fd)
        if xterm is not None:
            _stop(xterm)
        _stop(xvfb)


def _dial_in(screen: Screen, repeater_port: int, repeater_id: str,
             log: Path) -> subprocess.Popen[bytes]:
    """x11vnc dialling in to the proxy as to UltraVNC's repeater (mode II)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["x11vnc", "-display", f":{screen.display}", "-nopw", "-norc", "-localhost",
             "-rfbport", str(free_port()), "-noxdamage", "-shared",
             "-connect", f"repeater=ID:{repeater_id}+127.0.0.1:{repeater_port}"],
            env=screen.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True)


def _paint_root(screen: Screen) -> None:
    subprocess.run(["xsetroot", "-solid", "#%02x%02x%02x" % ROOT_COLOUR], env=screen.env,
                   check=True, timeout=TIMEOUT)


@pytest.mark.parametrize(("query", "colour", "path"), [
    ("path=websockify%3Ftoken%3D1234", "green", "/websockify?token=1234"),
    ("repeaterID=1234", "red", "/websockify"),  # no token: noVNC sends its ID block
])
def test_novnc_reaches_x11vnc_parked_by_repeater_id(
        start_proxy: StartProxy, screen: Screen, tmp_path: Path, query: str, colour: str,
        path: str) -> None:
    _need_chromium()
    if not (DEBIAN_NOVNC / "vnc.html").is_file():
        pytest.skip("Debian's novnc package is not installed: apt-get install novnc")
    rport = free_port()
    proxy = start_proxy(0, "--web", str(DEBIAN_NOVNC), "--reverse-listen", f"127.0.0.1:{rport}",
                        positionals=["127.0.0.1:{port}"])
    x11vnc = _dial_in(screen, rport, "1234", tmp_path / "x11vnc.log")
    try:
        proxy.wait_for_log("127.0.0.1: parked under repeater ID 1234", timeout=4 * TIMEOUT)
        _paint_root(screen)
        page = (f"http://127.0.0.1:{proxy.port}/vnc.html?autoconnect=true&resize=off"
                f"&reconnect=false&{query}")
        result = _novnc(page, tmp_path, colour, colour)
    finally:
        _stop(x11vnc)
    _assert_desktop_drawn_and_typing_seen(result, colour)
    lines = proxy.stderr_lines()
    assert "127.0.0.1: repeater ID 1234 paired" in lines
    assert any(line.endswith(f"127.0.0.1: Path: '{path}'") for line in lines)
