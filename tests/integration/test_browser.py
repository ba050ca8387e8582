"""Headless Chromium (and Node) through the real command: noVNC, the page, the JS library.

The drivers in ``tests/browser`` (playwright-core on Debian's ``/usr/bin/chromium``; browser
downloads are blocked here) do the clicking and report observations as JSON; the
assertions are here. ``scripts/test`` installs chromium, tigervnc-standalone-server, novnc,
xterm and x11-xserver-utils with apt and the npm packages when they are missing; without
them these tests skip, naming what is missing. Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.process import free_port, wait_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]

BROWSER_DIR = Path(__file__).resolve().parent.parent / "browser"
LIBRARY = Path(__file__).resolve().parents[2] / "proxy" / "serve" / "static" / "websockify.js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DEBIAN_NOVNC = Path("/usr/share/novnc")
ROOT_COLOUR = (0x33, 0x66, 0xCC)
# Framebuffer coordinates: a root-window point, and the xterm's top-left region.
SCREEN = (800, 600)
ROOT_POINT = (700, 550)
TERMINAL = (200, 150, 200, 80)
TYPED = {"green": (0, 255, 0), "red": (255, 0, 0), "yellow": (255, 255, 0)}


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    return node


def _need(package: str) -> None:
    if not (BROWSER_DIR / "node_modules" / package / "package.json").is_file():
        pytest.skip(f"npm package {package} missing: run `npm install --prefix tests/browser`")


def _need_chromium() -> None:
    _need("playwright-core")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium")


def run_driver(script: str, *args: str, timeout: float = 12 * TIMEOUT) -> dict[str, object]:
    """Run ``node tests/browser/SCRIPT ARGS`` in its own process group; its JSON result.

    On a timeout the whole group (node and the Chromium it started) is killed.
    """
    proc = subprocess.Popen([_node(), script, *args], cwd=BROWSER_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{script} did not finish in {timeout} s:\n{err.decode()}") from None
    finally:
        if proc.poll() is None:  # pragma: no cover - only after an exception above
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{err.decode()}"
    lines = out.decode().strip().splitlines()
    assert lines, f"{script} printed nothing; stderr:\n{err.decode()}"
    result: dict[str, object] = json.loads(lines[-1])
    return result


# -- a real VNC desktop ---------------------------------------------------------------------


@dataclass
class Desktop:
    display: int
    port: int


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group we started, then SIGKILL after TIMEOUT."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(TIMEOUT)


def _read_display(fd: int, proc: subprocess.Popen[bytes], log: Path) -> int:
    """Xvnc -displayfd writes the display number it chose, then a newline."""
    deadline = time.monotonic() + 2 * TIMEOUT
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            raise AssertionError(f"Xvnc did not report its display:\n{log.read_text()}")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                raise AssertionError(f"Xvnc closed -displayfd:\n{log.read_text()}")
            data += chunk
    return int(data)


def start_xterm(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The terminal the tests type into: a colour name typed there paints the root window."""
    x, y = TERMINAL[:2]
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["xterm", "-geometry", f"30x6+{x}+{y}", "-fa", "DejaVu Sans Mono", "-fs", "14",
             "-bg", "white", "-fg", "black", "-e", "sh", "-c",
             'read colour; xsetroot -solid "$colour"; sleep 600'],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    """Xvnc on a free display: a blue root window and an xterm that reads a colour.

    Typing a colour name and Enter in the xterm turns the root window that colour.
    """
    for tool in ("Xvnc", "xsetroot", "xterm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing: apt-get install tigervnc-standalone-server "
                        "x11-xserver-utils xterm")
    port = free_port()
    log = tmp_path / "xvnc.log"
    read_fd, write_fd = os.pipe()
    with open(log, "wb") as out:
        xvnc = subprocess.Popen(
            ["Xvnc", "-displayfd", str(write_fd), "-rfbport", str(port), "-localhost",
             "-nolisten", "tcp", "-SecurityTypes", "None", "-AlwaysShared",
             "-geometry", f"{SCREEN[0]}x{SCREEN[1]}", "-depth", "24"],
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True)
    os.close(write_fd)
    xterm: subprocess.Popen[bytes] | None = None
    try:
        display = _read_display(read_fd, xvnc, log)
        wait_port(port, time.monotonic() + 2 * TIMEOUT, xvnc, log)
        env = {**os.environ, "DISPLAY": f":{display}"}
        colour = "#%02x%02x%02x" % ROOT_COLOUR
        subprocess.run(["xsetroot", "-solid", colour], env=env, check=True, timeout=TIMEOUT)
        xterm = start_xterm(env, tmp_path / "xterm.log")
        yield Desktop(display, port)
    finally:
        os.close(read_fd)
        if xterm is not None:
            _stop(xterm)
        _stop(xvnc)


def _novnc(page: str, shots: Path, name: str, colour: str) -> dict[str, object]:
    spec = {"root": ROOT_POINT, "rootColour": ROOT_COLOUR, "terminal": TERMINAL,
            "type": colour, "typedColour": TYPED[colour]}
    return run_driver("novnc.mjs", page, str(shots), name, json.dumps(spec))


def _assert_desktop_drawn_and_typing_seen(result: dict[str, object], colour: str) -> None:
    assert result["canvas"] == list(SCREEN)
    assert result["rootBefore"] == list(ROOT_COLOUR)
    assert isinstance(result["terminalWhiteShare"], float) and result["terminalWhiteShare"] > 0.5
    assert isinstance(result["terminalPixelsChanged"], int) and \
        result["terminalPixelsChanged"] > 30
    assert result["rootAfter"] == list(TYPED[colour])


@pytest.mark.parametrize(("page", "colour"), [
    ("vnc_lite.html", "green"),
    ("vnc.html?autoconnect=true&resize=off&reconnect=false", "red"),
])
def test_debian_novnc_shows_the_desktop_and_types_into_it(
        start_proxy: StartProxy, desktop: Desktop, tmp_path: Path, page: str,
        colour: str) -> None:
    """Debian's noVNC used in place (a tree of symlinks) as --web, against Xvnc."""
    _need_chromium()
    if not (DEBIAN_NOVNC / "vnc_lite.html").is_file():
        pytest.skip("Debian's novnc package is not installed: apt-get install novnc")
    proxy = start_proxy(desktop.port, "--web", str(DEBIAN_NOVNC))
    name = page.split(".")[0]
    result = _novnc(f"http://127.0.0.1:{proxy.port}/{page}", tmp_path, name, colour)
    _assert_desktop_drawn_and_typing_seen(result, colour)
    assert (tmp_path / f"{name}-after-enter.png").stat().st_size > 0
    assert "Plain non-SSL (ws://) WebSocket connection" in proxy.stderr()


NPM_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>noVNC from npm</title></head>
<body style="margin:0"><div id="screen" style="width:800px;height:600px"></div>
<script type="module">
import RFB from "./novnc/core/rfb.js";
window.rfb = new RFB(document.getElementById("screen"), `ws://${location.host}/websockify`);
</script></body></html>
"""


def test_novnc_from_npm_as_a_library_shows_the_desktop_and_types_into_it(
        start_proxy: StartProxy, desktop: Desktop, tmp_path: Path) -> None:
    """@novnc/novnc's core/rfb.js on a page of ours; noVNC reached through a symlink."""
    _need_chromium()
    _need("@novnc/novnc")
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text(NPM_PAGE)
    (root / "novnc").symlink_to(BROWSER_DIR / "node_modules" / "@novnc" / "novnc")
    # The link leads out of the web root: allowed only with --web-follow-symlinks (#15).
    proxy = start_proxy(desktop.port, "--web", str(root), "--file-only", "--web-follow-symlinks")
    result = _novnc(f"http://127.0.0.1:{proxy.port}/", tmp_path, "npm", "yellow")
    _assert_desktop_drawn_and_typing_seen(result, "yellow")


# -- the diagnostics page and the JS library ------------------------------------------------


def test_the_diagnostics_page_shows_rtt_a_chart_and_explains_closes(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path) -> None:
    _need_chromium()
    echo = start_proxy(echo_backend.port, "--diagnostics")
    refused = start_proxy(free_port(), "--diagnostics")
    result = run_driver("diagnostics.mjs", f"http://127.0.0.1:{echo.port}/websockify/",
                        f"http://127.0.0.1:{refused.port}/websockify/", str(tmp_path))
    assert result["target"] == f"127.0.0.1:{echo_backend.port}"
    assert result["kind"] == "echoes what it receives: probing round-trip time"
    assert isinstance(result["rtt"], str) and result["rtt"].endswith(" ms")
    assert 0 < float(result["rtt"].split()[0]) < 1000
    assert isinstance(result["rtts"], int) and result["rtts"] >= 3
    before, chart, burst = result["chartBefore"], result["chart"], result["chartAfterBurst"]
    assert isinstance(before, dict) and isinstance(chart, dict) and isinstance(burst, dict)
    assert before["rtt"] == 0 and before["up"] == 0
    assert chart["rtt"] > 20  # the round-trip line is drawn
    assert burst["up"] > 20 and burst["down"] > 20  # and both throughput lines
    assert result["received"] == result["sent"] == "1.0 MiB"
    assert result["closeCode"] == "1000 (normal)"
    assert result["closeReason"] == "'closed from the diagnostics page'"
    refusal = result["refused"]
    assert isinstance(refusal, dict)
    assert refusal["closeCode"].startswith("1011 ")
    assert refusal["closeReason"] == "'Failed to connect to downstream server'"
    assert "could not connect to the target" in refusal["explanation"]
    assert (tmp_path / "diagnostics-echo.png").stat().st_size > 0


def _library_expectations(result: dict[str, object]) -> None:
    assert result["protocol"] == "binary"
    assert result["first"] == [1, 2, 3]
    assert (result["u16"], result["u32"]) == (0x1234, 0xDEADBEEF)
    assert result["lines"] == ["h\u00e9llo", "world", None]
    assert result["arrayBuffer"] == [9, 8, 7]
    assert result["bigEqual"] is True
    assert result["bytesSent"] == result["bytesReceived"] == 9 + 13 + 3 + 300 * 1024
    assert result["close"] == {"code": 1000, "reason": "bye", "wasClean": True,
                               "willReconnect": False,
                               "explanation": "The connection was closed normally (bye)."}
    assert result["readAfterClose"] == "QueueClosedError"
    events = result["reconnect"]
    assert isinstance(events, list)
    assert [e["type"] for e in events] == ["open", "close", "reconnecting"] * 2 + ["open", "close"]
    closes = [e for e in events if e["type"] == "close"]
    assert {(e["code"], e["reason"]) for e in closes} == {
        (1011, "Failed to connect to downstream server")}
    assert [e["willReconnect"] for e in closes] == [True, True, False]
    assert "could not connect to the target" in closes[0]["explanation"]
    assert [e["attempt"] for e in events if e["type"] == "reconnecting"] == [1, 2]
    dead = result["dead"]
    assert isinstance(dead, dict)
    assert (dead["opened"], dead["code"]) == (False, 1006)
    assert dead["message"].startswith("The WebSocket never opened.")
    explain = result["explain"]
    assert isinstance(explain, dict)
    assert "refuses text messages" in explain["textRefused"]
    assert "shutting down" in explain["shutdown"]
    assert explain["app"] == "Closed by the application with code 4001: custom."


@pytest.fixture
def library_proxies(start_proxy: StartProxy,
                    echo_backend: EchoBackend) -> tuple[int, int, int]:
    echo = start_proxy(echo_backend.port, "--diagnostics")
    refused = start_proxy(free_port())
    return echo.port, refused.port, free_port()


def test_the_js_library_in_chromium_against_a_tcp_echo_target(
        library_proxies: tuple[int, int, int], tmp_path: Path) -> None:
    _need_chromium()
    echo, refused, dead = library_proxies
    result = run_driver("library.mjs", "chromium",
                        f"http://127.0.0.1:{echo}/websockify/websockify.js",
                        f"ws://127.0.0.1:{echo}/", f"ws://127.0.0.1:{refused}/",
                        f"ws://127.0.0.1:{dead}/", str(tmp_path))
    _library_expectations(result)


@pytest.mark.node
def test_the_js_library_in_node_with_ws_against_a_tcp_echo_target(
        library_proxies: tuple[int, int, int]) -> None:
    _need("ws")
    echo, refused, dead = library_proxies
    result = run_driver("library.mjs", "node", str(LIBRARY), f"ws://127.0.0.1:{echo}/",
                        f"ws://127.0.0.1:{refused}/", f"ws://127.0.0.1:{dead}/")
    _library_expectations(result)


# -- the Sessions view of the diagnostics page (issue #21) -----------------------------------


def test_the_sessions_view_lists_and_closes_sessions(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path) -> None:
    """Open the page, see two sessions appear, close one from the page: its client gets
    the close code, the other session goes on."""
    import threading
    from wsproto.events import BytesMessage

    from tests.support.wsclient import WSClient
    _need_chromium()
    proxy = start_proxy(echo_backend.port, "--diagnostics", "--admin-path", "/admin",
                        "--admin-auth-source", "ops:s3cret")
    clients = [WSClient.connect(proxy.port), WSClient.connect(proxy.port)]
    talking = threading.Event()

    def keep_kept_talking() -> None:
        """The second client sends while the page watches (its sparkline moves); the
        first one sends nothing, so its Close is the next thing it reads."""
        while not talking.wait(0.3):
            clients[1].send_binary(b"x" * 1000)
    talker = threading.Thread(target=keep_kept_talking)
    talker.start()
    try:
        result = run_driver("sessions.mjs", f"http://127.0.0.1:{proxy.port}/websockify/",
                            "ops", "s3cret", str(tmp_path))
    finally:
        talking.set()
        talker.join(TIMEOUT)
    try:
        assert result["refused"] == "401: credentials required"
        assert result["status"] == "2 sessions"
        before, after = result["before"], result["after"]
        assert isinstance(before, list) and isinstance(after, list)
        ports = {client.sock.getsockname()[1]: client for client in clients}
        assert sorted(row["peerPort"] for row in before) == sorted(ports)
        row = before[0]
        assert row["cells"][1:3] == ["127.0.0.1", f"127.0.0.1:{echo_backend.port}"]
        headings = result["headings"]
        assert isinstance(headings, list) and headings[:3] == ["id", "client", "target"]
        ids = sorted(r["id"] for r in before)
        assert (result["ascending"], result["descending"]) == (ids, ids[::-1])
        closed = result["closed"]
        assert result["closedFromPage"] == [closed]
        [left] = after
        assert left["id"] != closed
        by_id = {r["id"]: ports[r["peerPort"]] for r in before}
        close = by_id[closed].recv_close()
        assert (close.code, close.reason) == (1001, "Closed by an operator")
        kept = by_id[left["id"]]
        kept.send_binary(b"still here")
        received = b""
        while not received.endswith(b"still here"):  # after the talker's echoes
            event = kept.next_event()
            assert isinstance(event, BytesMessage)
            received += event.data
        if by_id[closed] is clients[1]:
            pytest.fail("the page closed the talking client, whose echoes hide the Close")
    finally:
        for client in clients:
            client.close_socket()
