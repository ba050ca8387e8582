"""SIGHUP and systemd readiness on the real command (#16 Operations 2 §1).

Signals go to the main pid only, as the contrib unit's ``ExecReload=/bin/kill -HUP $MAINPID``
does, and the command runs with that unit's options and no terminal (as under systemd).
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT, scaled
from tests.integration.conftest import StartProxy
from tests.integration.test_workers import only, two_workers
from tests.integration.test_wrap import WrapProcess
from tests.support.backends import EchoBackend
from tests.support.certs import Pki
from tests.support.inprocess import wait_for
from tests.support.process import ProxyProcess, clean_env, free_port, wait_port
from tests.support.wsclient import WSClient

pytestmark = pytest.mark.integration

UNIT = Path(__file__).parents[2] / "contrib" / "systemd" / "websockify@.service"


def unit_options() -> list[str]:
    """The contrib unit's ExecStart options, without the program and its --config file."""
    text = UNIT.read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    args = shlex.split(line.partition("=")[2])[1:]
    at = args.index("--config")
    del args[at:at + 2]
    assert "--drain-timeout" in args, args  # the options the issue was found with
    return args


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


class Reloadable:
    """Options for one combination of --log-file, --cert and a token file, and the SIGHUP
    line a process serving with them logs."""

    def __init__(self, tmp_path: Path, pki: Pki, backend: int, *, log_file: bool, tls: bool,
                 tokens: bool) -> None:
        self.args: list[str] = []
        self.kwargs: dict[str, object] = {}
        self.path = "/"
        done = []
        if log_file:
            self.log = tmp_path / "ws.log"
            self.args += ["--log-file", str(self.log)]
            done.append(f"log file {self.log}")
        if tls:
            cert = tmp_path / "cert.pem"
            shutil.copy(pki.combined, cert)
            self.args += ["--cert", str(cert)]
            done.append(f"TLS certificate {cert}")
        if tokens:
            table = tmp_path / "tokens"
            table.write_text(f"abc: 127.0.0.1:{backend}\n")
            self.args += ["--token-plugin", "TokenFile", "--token-source", str(table)]
            self.kwargs["positionals"] = ["127.0.0.1:{port}"]
            self.path = "/?token=abc"
            done.append(f"tokens from {table} (1 tokens)")
        self.line = f"SIGHUP: reloaded {', '.join(done)}" if done else "SIGHUP: nothing to reload"
        self.parent_line = (f"SIGHUP: reloaded log file {self.log}; forwarded to the workers"
                            if log_file else "SIGHUP: forwarded to the workers")


def sighup_lines(proxy: ProxyProcess, n: int) -> list[str]:
    """The first ``n`` "SIGHUP: " lines on stderr, once there are that many."""
    def lines() -> list[str] | None:
        found = [x for x in proxy.stderr_lines() if x.startswith("SIGHUP: ")]
        return found if len(found) >= n else None
    return wait_for(lines, f"{n} SIGHUP line(s); stderr:\n{proxy.stderr()}")


COMBINATIONS = list(itertools.product((False, True), repeat=3))


@pytest.mark.parametrize("log_file,tls,tokens", COMBINATIONS,
                         ids=["-".join(n for n, on in zip(("log", "tls", "tokens"), c) if on)
                              or "nothing" for c in COMBINATIONS])
def test_sighup_reloads_and_live_sessions_continue(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki, tmp_path: Path,
        log_file: bool, tls: bool, tokens: bool) -> None:
    """Every configuration survives `systemctl reload`; today's main dies without a log
    file, a certificate or a token file (exit 129 under a shell)."""
    options = Reloadable(tmp_path, pki, echo_backend.port, log_file=log_file, tls=tls,
                         tokens=tokens)
    proxy = start_proxy(echo_backend.port, *unit_options(), *options.args, **options.kwargs)
    assert proxy.proc is not None
    with WSClient.connect(proxy.port, options.path) as live:
        live.echo(b"before")
        os.kill(proxy.proc.pid, signal.SIGHUP)
        assert sighup_lines(proxy, 1) == [options.line]
        live.echo(b"after the reload")
    with WSClient.connect(proxy.port, options.path) as fresh:
        fresh.echo(b"new session")
    assert proxy.proc.poll() is None
    if log_file:
        assert options.line in options.log.read_text().splitlines()
    assert proxy.stop() == 0


@pytest.mark.parametrize("everything", [False, True], ids=["nothing", "log-tls-tokens"])
def test_sighup_with_two_workers_reloads_each_and_keeps_their_sessions(
        start_proxy: StartProxy, echo_backend: EchoBackend, pki: Pki, tmp_path: Path,
        everything: bool) -> None:
    """The parent forwards SIGHUP; each worker reloads and logs its own line."""
    options = Reloadable(tmp_path, pki, echo_backend.port, log_file=everything,
                         tls=everything, tokens=everything)
    proxy = start_proxy(echo_backend.port, *unit_options(), "--workers", "2", *options.args,
                        **options.kwargs)
    assert proxy.proc is not None
    pids = two_workers(proxy)
    sessions = []
    for worker in pids:  # a live session in each worker
        with only(worker, pids):
            sessions.append(WSClient.connect(proxy.port, options.path))
            sessions[-1].echo(b"before")
    try:
        os.kill(proxy.proc.pid, signal.SIGHUP)
        assert sorted(sighup_lines(proxy, 3)) == sorted(
            [options.parent_line, options.line, options.line])
        for client in sessions:
            client.echo(b"after the reload")
    finally:
        for client in sessions:
            client.close_socket()
    for worker in pids:
        with only(worker, pids), WSClient.connect(proxy.port, options.path) as fresh:
            fresh.echo(b"new session")
    assert proxy.proc.poll() is None and all(os.path.exists(f"/proc/{p}") for p in pids)
    assert proxy.stop() == 0


def test_a_failed_reload_is_a_warning_and_nothing_reloaded(
        start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path) -> None:
    """The log file's directory went away: the old file stays, and the line says so."""
    logs = tmp_path / "logs"
    logs.mkdir()
    proxy = start_proxy(echo_backend.port, *unit_options(), "--log-file", str(logs / "ws.log"))
    assert proxy.proc is not None
    logs.rename(tmp_path / "moved")
    os.kill(proxy.proc.pid, signal.SIGHUP)
    assert sighup_lines(proxy, 1) == ["SIGHUP: nothing reloaded"]
    assert proxy.stderr_lines()[-2] == (
        f"cannot reopen log file {logs}/ws.log: [Errno 2] No such file or directory: "
        f"'{logs}/ws.log'")
    assert proxy.stderr_lines()[-1] == "SIGHUP: nothing reloaded"
    assert proxy.stop() == 0


def test_sighup_ends_a_foreground_process_on_a_terminal(echo_backend: EchoBackend,
                                                        tmp_path: Path) -> None:
    """stderr on a terminal: a hangup means the terminal went away (websockify's action)."""
    master, slave = os.openpty()
    port = free_port()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", f"127.0.0.1:{port}",
             f"127.0.0.1:{echo_backend.port}", "--log-file", str(tmp_path / "ws.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, cwd=tmp_path,
            env=clean_env(), start_new_session=True)
    finally:
        os.close(slave)
    try:
        wait_port(port, time.monotonic() + 2 * TIMEOUT, proc)
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(TIMEOUT) == -signal.SIGHUP
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        os.close(master)


# -- sd_notify ---------------------------------------------------------------------------------


class NotifyListener:
    """A service manager's notify socket: datagrams with the sender's pid (SO_PASSCRED)."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(2 * TIMEOUT)
        #: Every (message, sender pid) received, in order.
        self.received: list[tuple[str, int]] = []

    def recv(self) -> tuple[str, int]:
        data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = -1
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:12])[0]  # struct ucred: pid, uid, gid
        self.received.append((data.decode(), pid))
        return self.received[-1]

    def next_state(self) -> tuple[str, int]:
        """The next message other than ``WATCHDOG=1``."""
        while True:
            message, pid = self.recv()
            if message != "WATCHDOG=1":
                return message, pid

    def rest(self) -> None:
        """Receive whatever else arrives within a short while."""
        self.sock.settimeout(0.3)
        try:
            while True:
                self.recv()
        except TimeoutError:
            pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_path(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "notify"
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        pytest.skip("tmp_path too long for an AF_UNIX socket")
    yield str(path)


def test_sd_notify_ready_when_listening_watchdog_reload_and_stopping(
        notify_path: str, echo_backend: EchoBackend, tmp_path: Path) -> None:
    """READY=1 once the port answers, WATCHDOG=1 every WATCHDOG_USEC/2, RELOADING=1 and
    READY=1 around SIGHUP, STOPPING=1 on SIGTERM; every message from the main pid."""
    listener = NotifyListener(notify_path)
    proxy = ProxyProcess(tmp_path, echo_backend.port, *unit_options(), wait_for_port=False,
                         env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000"})
    try:
        proxy.start()
        assert proxy.proc is not None
        main = proxy.proc.pid
        assert listener.next_state() == ("READY=1", main)
        socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT).close()
        start = time.monotonic()
        while sum(m == "WATCHDOG=1" for m, _ in listener.received) < 3:
            listener.recv()
        assert time.monotonic() - start < scaled(2.0)  # 0.2 s apart, not one per TICK or slower
        os.kill(main, signal.SIGHUP)
        reloading, pid = listener.next_state()
        assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=") and pid == main
        assert listener.next_state() == ("READY=1", main)
        assert proxy.stop() == 0
        assert listener.next_state() == ("STOPPING=1", main)
        listener.rest()
        assert {pid for _, pid in listener.received} == {main}
    finally:
        proxy.stop()
        listener.close()


def full_notify_socket(path: str) -> tuple[NotifyListener, socket.socket]:
    """A service manager that stopped reading: its notify socket's queue is full."""
    listener = NotifyListener(path)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.connect(path)
    filler.setblocking(False)
    try:
        for _ in range(100_000):  # bounded; the queue holds a few hundred at most
            filler.send(b"X" * 1024)
    except BlockingIOError:
        return listener, filler
    raise AssertionError("the notify socket's queue never filled")


@pytest.mark.parametrize("stop_at_once,options", [(False, ()), (True, ()),
                                                  (True, ("--workers", "2"))])
def test_a_manager_that_stops_reading_neither_hangs_start_up_nor_loses_a_stop(
        notify_path: str, echo_backend: EchoBackend, tmp_path: Path,
        stop_at_once: bool, options: tuple[str, ...]) -> None:
    """READY=1 used to block for ever on a full notify queue, with the port bound and no
    session served; and a SIGTERM in that window (before the handlers) killed the process
    by default action. Now the send gives up after a second, and a stop sent meanwhile
    is noted and acted on: "In exit", status 0."""
    listener, filler = full_notify_socket(notify_path)
    proxy = ProxyProcess(tmp_path, echo_backend.port, *options,
                         env={"NOTIFY_SOCKET": notify_path})
    try:
        proxy.start()
        if stop_at_once:  # the port answers; READY=1 is still waiting for room
            assert proxy.stop() == 0
            assert "In exit" in proxy.stderr() or options  # --workers: the workers say it
            assert "Traceback" not in proxy.stderr()
        else:
            with WSClient.connect(proxy.port) as client:
                client.send_binary(b"ready")
                assert client.recv_bytes(5) == b"ready"
    finally:
        proxy.stop()
        filler.close()
        listener.close()


def test_sd_notify_abstract_socket_and_workers_stay_silent(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    """``@name`` (abstract namespace); with --workers 2 only the parent notifies."""
    address = f"@websockify-test-{uuid.uuid4().hex}"
    listener = NotifyListener(address)
    try:
        proxy = start_proxy(echo_backend.port, *unit_options(), "--workers", "2",
                            env={"NOTIFY_SOCKET": address})
        assert proxy.proc is not None
        main = proxy.proc.pid
        pids = two_workers(proxy)
        assert listener.next_state() == ("READY=1", main)
        os.kill(main, signal.SIGHUP)
        sighup_lines(proxy, 3)  # the workers reloaded too (and must not have notified)
        assert listener.next_state()[0].startswith("RELOADING=1\n")
        assert listener.next_state() == ("READY=1", main)
        assert proxy.stop() == 0
        assert listener.next_state() == ("STOPPING=1", main)
        listener.rest()
        senders = {pid for _, pid in listener.received}
        assert senders == {main} and not senders & set(pids)
        assert [m for m, _ in listener.received if m == "WATCHDOG=1"] == []  # not asked for
    finally:
        listener.close()


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")),
                    reason="wrap mode needs a C compiler")
def test_a_wrapped_command_does_not_inherit_notify_socket(
        notify_path: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Only the main process may notify (NotifyAccess=main): the command never sees it."""
    listener = NotifyListener(notify_path)
    script = ("import os, time\n"
              "names = ('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'PATH')\n"
              "open('env.txt', 'w').write(' '.join(n for n in names if n in os.environ))\n"
              "time.sleep(60)\n")
    proxy = WrapProcess(tmp_path, tmp_path_factory.mktemp("xdg-cache"), [],
                        [sys.executable, "-c", script])
    proxy.env.update(NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="60000000")
    try:
        proxy.start()
        assert proxy.proc is not None
        assert listener.next_state() == ("READY=1", proxy.proc.pid)
        env = tmp_path / "env.txt"
        assert wait_for(lambda: env.exists() and env.read_text(), "the command's env.txt") \
            == "PATH"
    finally:
        proxy.stop()
        listener.close()
