"""Hostile and faulty peers for the reliability checks (issue 9, docs/reliability.rst).

Used by the integration tests (CI sizes) and by ``scripts/fuzz``, ``scripts/soak`` and
``scripts/slowloris`` (full sizes). Stdlib only. Every loop is bounded in count and time,
and every socket is closed on every path.

* ``fuzz``: seeded random and mutated handshakes and frames against a live proxy; each case
  must end in an HTTP status or a WebSocket close code (or a silent close where websockify's
  rules call for one).
* ``soak``: connect / echo / end cycles with mixed abrupt endings against ``SoakBackend``,
  with SHA-256 checks of every byte both ways for the endings that promise delivery.
* ``slowloris``: connections dribbling a request a byte at a time.
* ``ProcessProbe``: a process's open fds and threads from /proc.
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import re
import selectors
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

# -- /proc --------------------------------------------------------------------------------------


#: TCP states of /proc/net/tcp that hold no open connection: LISTEN, TIME_WAIT, CLOSE.
_NOT_OPEN = {"0A", "06", "07"}


def open_connections(port: int) -> int:
    """Open TCP connections whose local port is ``port`` (on this host, both IP versions)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                rows = lines.readlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] not in _NOT_OPEN:
                count += 1
    return count


#: futex()'s number in /proc/PID/task/TID/syscall (x86-64 202, arm64 98).
_FUTEX = {"x86_64": "202", "aarch64": "98"}.get(os.uname().machine, "202")


class ProcessProbe:
    """Open file descriptors and threads of a (Linux) process, read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> int:
        """Threads not parked: a handler thread waiting in the pool for its next connection
        (issue #19, ``proxy.serve.pool``) sits in futex() and is no leak; one stuck in a
        socket call (poll, recv, send, connect) is, and counts."""
        busy = 0
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/syscall", encoding="ascii") as call:
                    number = call.read().split()[0]
            except (FileNotFoundError, IndexError):
                continue  # exited meanwhile
            if number != _FUTEX:
                busy += 1
        return busy

    def snapshot(self) -> tuple[int, int]:
        return self.fds(), self.threads()

    def idle(self, port: int, timeout: float) -> tuple[int, int]:
        """The snapshot once no connection on ``port`` is open (issue #17 §3: a condition,
        not a settle-sleep): e.g. wait_port's probe connection is gone. Its handler thread
        may end a moment after the socket is closed; a baseline that still counts it only
        makes the leak check one thread more lenient, never flaky."""
        deadline = time.monotonic() + timeout
        while open_connections(port):
            if time.monotonic() >= deadline:
                raise AssertionError(f"connections on port {port} still open")
            time.sleep(0.01)
        return self.snapshot()

    def wait_for(self, baseline: tuple[int, int], timeout: float) -> tuple[int, int]:
        """Poll until fds and threads are back at ``baseline`` (or lower); return the last."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.snapshot()
            if (now[0] <= baseline[0] and now[1] <= baseline[1]) or time.monotonic() >= deadline:
                return now
            time.sleep(0.05)


# -- frames -------------------------------------------------------------------------------------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def handshake(path: str = "/", extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n{extra}\r\n"
            ).encode("latin-1")


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
          masked: bool = True, mask: bytes | None = None, length: int | None = None) -> bytes:
    """A client frame; ``length`` overrides the encoded payload length (lies included)."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size & (2**64 - 1))
    if not masked:
        return head + payload
    key = mask if mask is not None else os.urandom(4)
    return head + key + _mask(payload, key)


def _mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    repeated = (key * (len(data) // 4 + 1))[:len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(data), "big")


class FrameReader:
    """Parses the proxy's (unmasked) frames from a byte stream; enough for the checks."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.data = bytearray()  # payload of data frames (text and binary)
        self.close: tuple[int, bytes] | None = None  # (code or 1005, reason)
        self.pings = 0

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while self.close is None:
            parsed = self._one()
            if parsed is None:
                return

    def _one(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        opcode, size, offset = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if size == 126:
            if len(buf) < 4:
                return None
            size, offset = struct.unpack_from("!H", buf, 2)[0], 4
        elif size == 127:
            if len(buf) < 10:
                return None
            size, offset = struct.unpack_from("!Q", buf, 2)[0], 10
        if len(buf) < offset + size:
            return None
        payload = bytes(buf[offset:offset + size])
        del buf[:offset + size]
        if opcode in (0, 1, 2):
            self.data += payload
        elif opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self.close = (code, payload[2:])
        elif opcode == 9:
            self.pings += 1
        return opcode, payload


# -- one raw exchange ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """How the proxy answered one case."""

    kind: str  # "http", "close", "silent" (closed without an answer), "timeout", "error"
    status: int = 0  # HTTP status
    code: int = 0  # WebSocket close code (after a 101)
    detail: str = ""

    @property
    def label(self) -> str:
        if self.kind == "http":
            return f"http {self.status}"
        if self.kind == "close":
            return f"close {self.code}"
        return self.kind


def exchange(port: int, data: bytes, timeout: float, pieces: int = 1,
             host: str = "127.0.0.1") -> Outcome:
    """Send ``data`` (in ``pieces`` writes), then read until the proxy closes or answers."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return Outcome("error", detail=f"connect: {exc}")
    deadline = time.monotonic() + timeout
    try:
        step = max(1, len(data) // max(1, pieces))
        try:
            for start in range(0, len(data), step):
                sock.sendall(data[start:start + step])
        except OSError:
            pass  # the proxy may answer and close before reading everything
        return _read_outcome(sock, deadline)
    finally:
        sock.close()


def _read_outcome(sock: socket.socket, deadline: float) -> Outcome:
    buf = bytearray()
    frames: FrameReader | None = None
    status = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Outcome("timeout", status=status, detail=bytes(buf[:80]).hex())
        sock.settimeout(remaining)
        error: OSError | None = None
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError as exc:
            chunk, error = b"", exc
        if frames is not None:
            frames.feed(chunk)
            if frames.close is not None:
                return Outcome("close", status=101, code=frames.close[0])
        else:
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, _, rest = bytes(buf).partition(b"\r\n\r\n")
                status = _status(head)
                if status != 101:
                    return Outcome("http", status=status)
                frames = FrameReader()
                frames.feed(rest)
                if frames.close is not None:
                    return Outcome("close", status=101, code=frames.close[0])
        if not chunk:
            if status == 101:
                return Outcome("silent", status=101, detail=f"EOF after 101 ({error})")
            match = _HTTP09_ERROR.search(buf)
            if match:  # http.server's answer to a request it took for HTTP/0.9: no head
                return Outcome("http", status=int(match.group(1)), detail="HTTP/0.9")
            if buf:
                return Outcome("error", detail=f"incomplete answer {bytes(buf[:60])!r}")
            return Outcome("silent", detail=str(error or "EOF"))


_HTTP09_ERROR = re.compile(rb"\A<!DOCTYPE HTML>.*<p>Error code: (\d{3})</p>", re.S)


def _status(head: bytes) -> int:
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return -1


# -- fuzz cases ---------------------------------------------------------------------------------

_TOKENS = [b"GET", b"POST", b"HEAD", b"OPTIONS", b"/", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0",
           b"Upgrade", b"websocket", b"Connection", b"Sec-WebSocket-Key", b"Sec-WebSocket-Version",
           b"13", b"8", b"99", b":", b"\r\n", b"\n", b" ", b"\t", b"\x00", b"\xff", b"%",
           b"Sec-WebSocket-Protocol", b"binary", b"base64", b"Host", b"Cookie", b"token=",
           b"Sec-WebSocket-Extensions", b"permessage-deflate", b"Content-Length", b"0", b"-1"]


@dataclass
class Case:
    kind: str
    data: bytes
    pieces: int = 1
    #: The outcomes that are correct for this case (labels); empty = any answer at all.
    expect: tuple[str, ...] = ()


def make_case(rng: random.Random) -> Case:
    """One case: a fifth each of garbage, mutated handshakes, and three kinds of frames."""
    kind = rng.choice(["garbage", "handshake", "handshake", "frames", "frames", "mutated"])
    if kind == "garbage":
        data = rng.randbytes(rng.randint(1, 600))
        if data[0] in (0x16, 0x80):  # TLS-looking: no certificate, silent close (§4.1)
            return Case(kind, data, expect=("silent",))
        return _case(kind, data + b"\r\n\r\n", pieces=rng.randint(1, 3))
    if kind == "handshake":
        return _case(kind, _mutated_handshake(rng), pieces=rng.randint(1, 4))
    frames = _random_frames(rng) if kind == "frames" else _mutated_frames(rng)
    return Case(kind, handshake() + frames, pieces=rng.randint(1, 4))


def _case(kind: str, data: bytes, pieces: int) -> Case:
    line, newline, _ = data.partition(b"\n")
    if not data or (newline and not line.decode("latin-1").split()):
        # Nothing (closed after the 3 s first-byte wait), or a complete request line of
        # whitespace only (str.split's, which includes \x1c-\x1f): http.server (and
        # websockify) close without answering. An unterminated line waits: 408.
        return Case(kind, data, pieces, expect=("silent",))
    return Case(kind, data, pieces)


def _mutated_handshake(rng: random.Random) -> bytes:
    data = bytearray(handshake(extra=rng.choice(
        ["", "Sec-WebSocket-Extensions: permessage-deflate\r\n", "Origin: http://x\r\n"])))
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)  # flip a byte
        elif op == 1:
            data[pos:pos] = rng.choice(_TOKENS)  # insert a token
        elif op == 2:
            del data[pos:pos + rng.randint(1, 20)]  # delete a run
        elif op == 3:
            data[pos:pos] = b"X-Fuzz: " + b"a" * rng.choice([10, 1000, 70000]) + b"\r\n"
        elif op == 4:
            line = rng.choice([b"Upgrade: websocket\r\n", b"Sec-WebSocket-Key: x\r\n",
                               b"Sec-WebSocket-Protocol: base64, binary\r\n"])
            data[pos:pos] = line * rng.randint(1, 120)  # repeated headers (100+ = 431)
        elif op == 5:
            del data[pos:]  # truncate (the proxy waits: handshake deadline → 408)
        else:
            data[pos:pos] = rng.randbytes(rng.randint(1, 30))
    if data.endswith(b"\r\n\r\n") or rng.random() < 0.5:
        return bytes(data)
    return bytes(data) + b"\r\n\r\n"


def _random_frames(rng: random.Random) -> bytes:
    """Plausible frames with random fields: opcodes, RSV bits, masks, lengths, payloads."""
    out = bytearray()
    for _ in range(rng.randint(1, 8)):
        opcode = rng.choice([0, 1, 2, 2, 2, 3, 8, 9, 10, 11, 15])
        payload = rng.randbytes(rng.choice([0, 1, 5, 125, 126, 300, 70000]) if opcode != 1
                                else rng.randint(0, 200))
        if opcode == 1 and rng.random() < 0.7:
            payload = "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(0, 50))
                              ).encode("utf-8", "replace")
        if opcode == 8 and rng.random() < 0.7:
            payload = struct.pack("!H", rng.choice([1000, 1001, 999, 1004, 1005, 1015, 3000,
                                                    4999, 5000, 65535])) + rng.randbytes(
                rng.randint(0, 10))
        out += frame(opcode, payload, fin=rng.random() < 0.8, rsv=rng.choice([0, 0, 0, 1, 4]),
                     masked=rng.random() < 0.95)
    return bytes(out)


def _mutated_frames(rng: random.Random) -> bytes:
    """Valid frames, then bytes flipped, inserted or removed, or lengths that lie."""
    good = bytearray()
    for _ in range(rng.randint(1, 5)):
        good += frame(2, rng.randbytes(rng.randint(0, 400)))
    if rng.random() < 0.3:
        good += frame(8, struct.pack("!H", 1000))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        pos = rng.randrange(len(good))
        if op == 0:
            good[pos] = rng.randrange(256)
        elif op == 1:
            good[pos:pos] = rng.randbytes(rng.randint(1, 10))
        elif op == 2:
            del good[pos:pos + rng.randint(1, 10)]
        else:
            good += frame(2, b"x", length=rng.choice([2**16, 2**31, 2**63 - 1, 2**64 - 1]))
    return bytes(good)


@dataclass
class FuzzReport:
    cases: int = 0
    seconds: float = 0.0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    #: (case number, kind, outcome, first bytes) of cases answered wrongly.
    bad: list[tuple[int, str, str, str]] = field(default_factory=list)


def fuzz(port: int, cases: int, seed: int, workers: int = 32, timeout: float = 8.0,
         time_limit: float = 3600.0) -> FuzzReport:
    """Run ``cases`` seeded cases with ``workers`` concurrent clients.

    The proxy should run with short deadlines (``--handshake-timeout 1
    --conn-idle-timeout 1``) so that incomplete input ends in 408 or close 1000 quickly;
    ``timeout`` bounds each case on the client side, ``time_limit`` the whole run.
    """
    rng = random.Random(seed)
    generated = [make_case(rng) for _ in range(cases)]
    report = FuzzReport()
    start = time.monotonic()
    lock = threading.Lock()

    def run(number: int) -> None:
        if time.monotonic() - start > time_limit:
            return
        case = generated[number]
        outcome = exchange(port, case.data, timeout, case.pieces)
        ok = outcome.kind in ("http", "close") if not case.expect else outcome.label in case.expect
        with lock:
            report.cases += 1
            report.outcomes[outcome.label] += 1
            if not ok:
                report.bad.append((number, case.kind, outcome.label + " " + outcome.detail,
                                   case.data[:60].hex()))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fuzz") as pool:
        list(pool.map(run, range(cases)))
    report.seconds = time.monotonic() - start
    return report


# -- a good client ------------------------------------------------------------------------------


def echo_roundtrip(port: int, payload: bytes, timeout: float = 5.0) -> float:
    """Upgrade, send ``payload`` as one binary message, read it back, close; the seconds taken.

    Raises:
        AssertionError: the echo did not come back intact.
    """
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(handshake())
        reader = _upgrade(sock)
        sock.sendall(frame(2, payload))
        _read_until(sock, reader, lambda: len(reader.data) >= len(payload), timeout)
        assert bytes(reader.data) == payload, "echo differs"
        sock.sendall(frame(8, struct.pack("!H", 1000)))
        _read_until(sock, reader, lambda: reader.close is not None, timeout)
    return time.monotonic() - start


def _upgrade(sock: socket.socket) -> FrameReader:
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"EOF during the handshake: {bytes(buf)!r}")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    assert _status(head) == 101, head
    reader = FrameReader()
    reader.feed(rest)
    return reader


def _read_until(sock: socket.socket, reader: FrameReader, done: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert callable(done)
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; got {len(reader.data)} bytes, close {reader.close}")
        sock.settimeout(remaining)
        chunk = sock.recv(262144)
        if not chunk:
            raise AssertionError(f"EOF; got {len(reader.data)} bytes, close {reader.close}")
        reader.feed(chunk)


# -- soak ---------------------------------------------------------------------------------------


class SoakBackend:
    """A TCP target driven by the first 32 bytes of each connection.

    ``E<tag>``: echo, then record SHA-256 and size of everything received under the tag
    at EOF. ``C<tag><n>``: send ``n`` seeded bytes, then close (FIN). ``K<tag><n>``: send
    ``n`` bytes, then reset (RST).
    """

    HEADER = 32

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.received: dict[str, tuple[str, int]] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._socks: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept, name="soak-accept", daemon=True)

    def __enter__(self) -> SoakBackend:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(10)
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(10)
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True,
                                      name="soak-conn")
            with self._lock:
                self._socks.add(sock)
                self._threads.add(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(30)
            header = b""
            while len(header) < self.HEADER:
                chunk = sock.recv(self.HEADER - len(header))
                if not chunk:
                    return
                header += chunk
            mode = chr(header[0])
            if mode not in "ECK" or not header[17:].isdigit():
                self._echo(sock, "", header)  # anything else: a plain echo
                return
            tag, count = header[1:17].decode().strip(), int(header[17:])
            if mode == "E":
                self._echo(sock, tag, header)
            else:
                sock.sendall(pattern(tag, count))
                if mode == "K":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        except Exception as exc:  # noqa: BLE001 - reported to the test
            self.errors.append(repr(exc))
        finally:
            sock.close()
            with self._lock:
                self._socks.discard(sock)
                self._threads.discard(threading.current_thread())

    def _echo(self, sock: socket.socket, tag: str, first: bytes = b"") -> None:
        digest, size = hashlib.sha256(first), len(first)
        sock.sendall(first)
        try:
            while chunk := sock.recv(65536):
                digest.update(chunk)
                size += len(chunk)
                sock.sendall(chunk)
        finally:
            with self._lock:
                self.received[tag] = (digest.hexdigest(), size)

    def wait_received(self, tag: str, timeout: float) -> tuple[str, int] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if tag in self.received:
                    return self.received.pop(tag)
            time.sleep(0.002)
        return None


def pattern(tag: str, count: int) -> bytes:
    """``count`` bytes that depend on ``tag`` (the target's side of a checksum check)."""
    return random.Random(tag).randbytes(count)


def soak_header(mode: str, tag: str, count: int = 0) -> bytes:
    assert len(tag) <= 16, tag
    return f"{mode}{tag:<16}{count:015d}".encode()


ENDINGS = ("clean", "clean", "client-rst", "half-close", "target-close", "target-reset")


@dataclass
class SoakReport:
    cycles: int = 0
    seconds: float = 0.0
    bytes_checked: int = 0
    endings: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)


def soak(port: int, backend: SoakBackend, cycles: int, seed: int, workers: int = 4,
         time_limit: float = 3600.0, timeout: float = 10.0) -> SoakReport:
    """``cycles`` connect/echo/end cycles with mixed endings (``ENDINGS``)."""
    rng = random.Random(seed)
    plans = [(f"{seed % 10000:04d}-{n:08d}", rng.choice(ENDINGS), rng.randint(0, 3),
              [rng.randint(1, 70000) for _ in range(rng.randint(1, 4))]) for n in range(cycles)]
    report = SoakReport()
    lock = threading.Lock()
    start = time.monotonic()

    def run(plan: tuple[str, str, int, list[int]]) -> None:
        if time.monotonic() - start > time_limit:
            return
        tag, ending, _, sizes = plan
        try:
            checked = _cycle(port, backend, tag, ending, sizes, timeout)
            error = None
        except (AssertionError, OSError) as exc:
            checked, error = 0, f"{tag} {ending}: {exc!r}"
        with lock:
            report.cycles += 1
            report.endings[ending] += 1
            report.bytes_checked += checked
            if error:
                report.failures.append(error)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soak") as pool:
        list(pool.map(run, plans))
    report.seconds = time.monotonic() - start
    return report


def _cycle(port: int, backend: SoakBackend, tag: str, ending: str, sizes: list[int],
           timeout: float) -> int:
    """One cycle; returns how many bytes were verified by checksum."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(handshake())
        reader = _upgrade(sock)
        if ending in ("target-close", "target-reset"):
            count = sum(sizes)
            mode = "C" if ending == "target-close" else "K"
            sock.sendall(frame(2, soak_header(mode, tag, count)))
            _read_until(sock, reader, lambda: reader.close is not None, timeout)
            assert reader.close is not None
            assert reader.close[0] == 1000, f"close {reader.close}"
            if mode == "C":  # everything the target sent before its FIN arrives, in order
                expected = pattern(tag, count)
                assert hashlib.sha256(reader.data).digest() == hashlib.sha256(expected).digest(), \
                    f"target data differs: {len(reader.data)} of {count} bytes"
                return count
            return 0
        sent = hashlib.sha256()
        sock.sendall(frame(2, soak_header("E", tag)))
        sent.update(soak_header("E", tag))
        total = SoakBackend.HEADER
        for size in sizes:
            payload = os.urandom(size)
            sock.sendall(frame(2, payload))
            sent.update(payload)
            total += size
        if ending == "client-rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return 0
        if ending == "half-close":
            sock.shutdown(socket.SHUT_WR)  # no Close frame: the proxy must end the session
            _drain(sock, timeout)
            return 0
        _read_until(sock, reader, lambda: len(reader.data) >= total, timeout)
        sock.sendall(frame(8, struct.pack("!H", 1000)))
        _read_until(sock, reader, lambda: reader.close is not None, timeout)
        assert reader.close is not None and reader.close[0] == 1000, f"close {reader.close}"
        got = backend.wait_received(tag, timeout)
        assert got == (sent.hexdigest(), total), f"target got {got}, sent {total} bytes"
        echoed = hashlib.sha256(bytes(reader.data[:total])).hexdigest()
        assert echoed == sent.hexdigest() and len(reader.data) == total, "echo differs"
        return 2 * total
    finally:
        sock.close()


def _drain(sock: socket.socket, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return
        except TimeoutError:
            continue
        except OSError:
            return
    raise AssertionError("the proxy did not close after the client's half-close")


# -- slowloris ----------------------------------------------------------------------------------


@dataclass
class SlowlorisReport:
    connections: int = 0
    #: Seconds from each connection's first byte to the proxy's close.
    cut_after: list[float] = field(default_factory=list)
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    not_cut: int = 0
    #: Round-trip times of the good client while the slow ones were connected.
    good_rtts: list[float] = field(default_factory=list)
    good_failures: list[str] = field(default_factory=list)


def slowloris(port: int, connections: int, interval: float, time_limit: float,
              good_every: float = 0.25) -> SlowlorisReport:
    """``connections`` sockets each send a request one byte every ``interval`` seconds.

    Returns when every one was closed by the proxy or ``time_limit`` passed. A good client
    does an echo round trip every ``good_every`` seconds meanwhile.
    """
    request = handshake(extra="X-Padding: " + "a" * 4000 + "\r\n")
    report = SlowlorisReport(connections=connections)
    selector = selectors.DefaultSelector()
    socks: dict[socket.socket, list[float]] = {}  # sock -> [first byte time, next send, sent]
    stop = threading.Event()
    good = threading.Thread(target=_good_client, args=(port, report, stop, good_every),
                            name="slowloris-good", daemon=True)
    try:
        now = time.monotonic()
        for n in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setblocking(False)
            sock.send(request[:1])
            t = time.monotonic()
            socks[sock] = [t, t + interval * (1 + n / connections), 1.0]
            selector.register(sock, selectors.EVENT_READ)
        good.start()
        deadline = now + time_limit
        while socks and time.monotonic() < deadline:
            for key, _ in selector.select(0.05):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                _slow_answer(ready, socks, selector, report)
            now = time.monotonic()
            for sock, state in list(socks.items()):
                if now >= state[1] and int(state[2]) < len(request):
                    try:
                        sock.send(request[int(state[2]):int(state[2]) + 1])
                    except OSError:
                        _slow_answer(sock, socks, selector, report)
                        continue
                    state[2] += 1
                    state[1] = now + interval
    finally:
        stop.set()
        if good.is_alive() or good.ident is not None:
            good.join(10)
        report.not_cut = len(socks)
        for sock in socks:
            sock.close()
        selector.close()
    return report


def _slow_answer(sock: socket.socket, socks: dict[socket.socket, list[float]],
                 selector: selectors.BaseSelector, report: SlowlorisReport) -> None:
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    first = socks[sock][0]
    if data:
        if data.startswith(b"HTTP/"):  # the status line (the body may follow separately)
            status = _status(data.split(b"\r\n\r\n")[0])
            report.answers[f"http {status}"] += 1
        # Read on until EOF: the proxy closes right after the answer.
        return
    report.cut_after.append(time.monotonic() - first)
    selector.unregister(sock)
    del socks[sock]
    sock.close()


def _good_client(port: int, report: SlowlorisReport, stop: threading.Event,
                 every: float) -> None:
    payload = b"ok" * 100
    while not stop.wait(every):
        try:
            report.good_rtts.append(echo_roundtrip(port, payload, timeout=5))
        except (AssertionError, OSError) as exc:
            report.good_failures.append(repr(exc))


# -- for the scripts ----------------------------------------------------------------------------


class LiveProxy:
    """``python -m proxy 127.0.0.1:PORT 127.0.0.1:BACKEND ARGS`` for the scripts.

    stderr goes to ``workdir/proxy-stderr.txt``; leaving the block sends SIGTERM (then
    SIGKILL) to this process only, by PID.
    """

    def __init__(self, backend_port: int, args: list[str], workdir: str,
                 python: str | None = None) -> None:
        import subprocess
        import sys

        from tests.support.process import clean_env, free_port, wait_port
        self.port = free_port()
        self.stderr_path = os.path.join(workdir, "proxy-stderr.txt")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [python or sys.executable, "-m", "proxy", f"127.0.0.1:{self.port}",
                 f"127.0.0.1:{backend_port}", *args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=root,
                env=clean_env())
        try:
            wait_port(self.port, time.monotonic() + 20, self.proc)
        except BaseException:
            self.close()
            raise
        self.probe = ProcessProbe(self.proc.pid)

    def stderr(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as err:
            return err.read()

    def baseline(self) -> tuple[int, int]:
        """fds and threads once wait_port's probe connection is gone."""
        return self.probe.idle(self.port, 10.0)

    def close(self) -> None:
        import subprocess
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> LiveProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_process(proxy: LiveProxy, baseline: tuple[int, int]) -> list[str]:
    """Problems after a run: fd or thread leak, traceback or handler exception on stderr."""
    problems = []
    after = proxy.probe.wait_for(baseline, 15)
    if after[0] > baseline[0]:
        problems.append(f"fd leak: {baseline[0]} before, {after[0]} after")
    if after[1] > baseline[1]:
        problems.append(f"thread leak: {baseline[1]} before, {after[1]} after")
    err = proxy.stderr()
    for needle in ("Traceback", "handler exception"):
        if needle in err:
            problems.append(f"{needle!r} on the proxy's stderr")
    return problems
