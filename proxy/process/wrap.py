"""Wrap mode (spec §7.9): run a command whose listen on the public port is moved to ours.

The command runs with ``LD_PRELOAD`` of our shim (``proxy/process/rebind.c``, compiled on first
use into a cache directory; the wheel ships only the C source). Unlike websockify:

* no racy free-port guess: ``PrivatePort`` binds 127.0.0.1:0 (never listening) and keeps
  that reservation; each start passes a fresh socket bound to the same port (SO_REUSEPORT)
  as ``REBIND_FD`` and the shim swaps it in for the command's socket;
* the command is never orphaned: it is stopped when we exit, and the shim asks the kernel
  to SIGTERM it if we die (``REBIND_PARENT_PID``);
* ``exit`` propagates the command's exit status (websockify exits 0, §13.12).

The child's environment is built as a dict, never by changing ``os.environ``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib import resources

from proxy.errors import StartupError

log = logging.getLogger("proxy.wrap")

SHIM_SOURCE = "rebind.c"
#: websockify's respawn throttle: the mean of the last three start times (spec §7.9).
RESPAWN_WINDOW = 10.0  # seconds
RESPAWN_HISTORY = 3
#: How long a stopped command gets between SIGTERM and SIGKILL.
STOP_GRACE = 5.0  # seconds
#: Variables naming sockets passed to *us* (systemd); the command must not see them.
ACTIVATION_VARS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
COMPILERS = ("cc", "gcc", "clang")


def cache_dir(env: Mapping[str, str]) -> str:
    """``$XDG_CACHE_HOME/websockify-threaded`` (default ``~/.cache/websockify-threaded``)."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "websockify-threaded")


def find_compiler(env: Mapping[str, str]) -> list[str] | None:
    """``$CC`` (may carry flags), else the first of cc, gcc, clang on ``$PATH``."""
    if env.get("CC"):
        words = shlex.split(env["CC"])
        if words and shutil.which(words[0], path=env.get("PATH")):
            return words
        return None
    for name in COMPILERS:
        path = shutil.which(name, path=env.get("PATH", os.defpath))
        if path:
            return [path]
    return None


def shim_path(env: Mapping[str, str]) -> str:
    """The compiled shim, building it first when the cache has no copy for this source.

    The file name carries a hash of the source and the machine type, so an upgrade or
    a shared home directory never loads a stale or foreign library. The build goes to
    a temporary file that is renamed into place: concurrent first starts are safe.

    Raises:
        StartupError: no C compiler, or the build failed (message says what to do).
    """
    source = resources.files("proxy.process").joinpath(SHIM_SOURCE).read_bytes()
    digest = hashlib.sha256(source + platform.machine().encode()).hexdigest()[:16]
    directory = cache_dir(env)
    target = os.path.join(directory, f"rebind-{digest}.so")
    if os.path.exists(target):
        return target
    compiler = find_compiler(env)
    if compiler is None:
        raise StartupError(
            "wrap mode needs a C compiler to build its LD_PRELOAD library once (rebind.so) "
            "and none was found: install gcc (Debian: apt-get install gcc) or set CC")
    _compile(compiler, source, directory, target)
    return target


def _compile(compiler: list[str], source: bytes, directory: str, target: str) -> None:
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as work:
            src = os.path.join(work, SHIM_SOURCE)
            with open(src, "wb") as f:
                f.write(source)
            out = os.path.join(work, "rebind.so")
            result = subprocess.run(
                [*compiler, "-shared", "-fPIC", "-O2", "-o", out, src, "-ldl"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
            if result.returncode != 0:
                detail = result.stderr.decode(errors="replace").strip()
                raise StartupError(f"wrap mode: building rebind.so with {compiler[0]} failed: "
                                   f"{detail}")
            os.replace(out, target)
    except (OSError, subprocess.SubprocessError) as exc:
        raise StartupError(f"wrap mode: cannot build rebind.so in {directory}: {exc}") from exc
    log.debug("built %s", target)


class PrivatePort:
    """A loopback port reserved for the command: bound, never listening, kept until close.

    Connections to it are refused while no command listens, as with websockify.
    """

    def __init__(self) -> None:
        self._reservation = _reuseport_socket()
        try:
            self._reservation.bind(("127.0.0.1", 0))
        except OSError:
            self._reservation.close()
            raise
        self.port: int = self._reservation.getsockname()[1]

    def socket_for_child(self) -> socket.socket:
        """A fresh socket bound to ``port``; the caller passes it on and closes its copy."""
        sock = _reuseport_socket()
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        self._reservation.close()


def _reuseport_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def child_env(env: Mapping[str, str], shim: str, old_port: int, new_port: int,
              fd: int, parent: int) -> dict[str, str]:
    """The command's environment: ``env`` plus the shim's variables, minus ``LISTEN_*``."""
    child = {k: v for k, v in env.items() if k not in ACTIVATION_VARS}
    preload = child.get("LD_PRELOAD")
    child["LD_PRELOAD"] = f"{shim}:{preload}" if preload else shim
    child.update(REBIND_OLD_PORT=str(old_port), REBIND_NEW_PORT=str(new_port),
                 REBIND_FD=str(fd), REBIND_PARENT_PID=str(parent))
    return child


def describe(cmd: Sequence[str]) -> str:
    """The command as websockify's log lines quote it: words joined by spaces."""
    return " ".join(cmd)


class Wrapper:
    """The wrapped command: start, poll (from the accept loop), stop.

    Only the main thread uses it (the shim's parent-death signal is tied to the thread
    that started the command, which must live as long as the process).
    """

    def __init__(self, cmd: Sequence[str], mode: str, shim: str, public_port: int,
                 private: PrivatePort, env: Mapping[str, str]) -> None:
        self.cmd = list(cmd)
        self.mode = mode
        self.shim = shim
        self.public_port = public_port
        self.private = private
        self.env = dict(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._starts = [0.0] * RESPAWN_HISTORY  # websockify's wrap_times
        self._warned = False
        #: The command's exit status once it ended in ``exit`` mode (shell convention).
        self.exit_status: int | None = None

    def start(self) -> None:
        """Start the command (websockify's ``Starting '<cmd>'`` line)."""
        log.info("Starting '%s'", describe(self.cmd))
        self._starts = [*self._starts[1:], time.time()]
        self._warned = False
        sock = self.private.socket_for_child()
        try:
            env = child_env(self.env, self.shim, self.public_port, self.private.port,
                            sock.fileno(), os.getpid())
            # A process group of its own, so stop() reaches what the command starts;
            # SIGPIPE back to the default, as websockify's Popen does (§7.9).
            self.proc = subprocess.Popen(self.cmd, env=env, pass_fds=(sock.fileno(),),
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         restore_signals=True)
        except OSError as exc:
            raise StartupError(f"wrap mode: cannot start '{describe(self.cmd)}': {exc}") from exc
        finally:
            sock.close()

    def poll(self) -> bool:
        """Check the command (each accept-loop tick); True when the proxy should exit."""
        if self.proc is not None:
            status = self.proc.poll()
            if status is None:
                return False
            log.debug("Wrapped command exited (or daemon). Returned %s", status)
            self.proc = None
            if self.mode == "exit":
                self.exit_status = 128 - status if status < 0 else status
                return True
        if self.mode == "respawn":
            self._respawn()
        return False

    def _respawn(self) -> None:
        if time.time() - sum(self._starts) / len(self._starts) < RESPAWN_WINDOW:
            if not self._warned:
                log.warning("Command respawning too fast")
                self._warned = True
            return
        self.start()

    def stop(self) -> None:
        """End the command and its process group: SIGTERM, then SIGKILL after a grace."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(STOP_GRACE)
        self.private.close()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
