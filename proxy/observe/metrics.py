"""Live counters for ``--metrics-path`` (Prometheus text) and ``--stats-interval`` (a log line).

Thread-safe and off the data path: the relay is never touched per read. A handler
registers its ``Relay`` when relaying starts; a scrape adds the byte counters of the live
relays (plain ints, read without a lock: a scrape may be one read behind) to the totals
of finished ones. Everything else is counted once per connection, when it ends.
No I/O here.

``--workers N`` (issue #16, part 3): every scrape lands on one worker, and each used to
report only its own counters, so ``connections_total`` went backwards between scrapes.
Now the counters live in shared memory: ``Metrics(workers=N)``, built in the parent
before it forks, maps one anonymous ``MAP_SHARED`` block (stdlib ``mmap``, no extra
dependency) with one fixed-size slot of signed 64-bit integers per worker. Each worker
``attach``-es to its slot after the fork and is its only writer (under its own lock);
any worker reads every slot and adds them up, so whichever answers reports the group.

Why this holds: every counter in a slot only grows, and each 8-byte aligned value is
written and read as one machine word (``memoryview`` items, never a torn value), so a
later scrape reads every slot at least as high as an earlier one. The bytes of live
relays are published into the slot (finished bytes plus live ones, never lowered) by the
owning worker on every tick of its accept loop (``publish``) and before it answers a
scrape, so other workers' live bytes are at most one tick old. A restarted worker
inherits the parent's mapping and its predecessor's slot: it continues from those
values (counters never reset) and marks that worker's open connections and sessions
ended (they died with it). Gauges are sums: a connection is open from its handler's
start to its end. Labels are kept as fixed-index arrays (failure reasons, HTTP statuses
400-599, close codes 1000-4999, each with an ``other`` entry), so a slot never grows.
"""

from __future__ import annotations

import dataclasses
import mmap
import threading
from dataclasses import dataclass, field
from typing import Protocol

PREFIX = "websockify"
#: The Content-Type of the Prometheus text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The ``reason`` labels of ``connections_failed_total`` (``sessionlog.failure_reason`` and
#: the handler); any other reason is counted as ``other``.
REASONS = ("auth", "client_stalled", "handshake", "limit", "record", "target", "target_stalled",
           "token")
OTHER = "other"
STATUSES = range(400, 600)  # HTTP error statuses counted by ``handshake_failures_total``
CLOSE_CODES = range(1000, 5000)  # RFC 6455 §7.4 codes (1000-4999)

# The slot layout (indexes of 64-bit integers). A reader copies a slot in index order,
# so each "ended" count sits before the count it is subtracted from: it is never read
# newer (larger) than its partner, and a gauge computed from the two is never negative.
_FINISHED, _STARTED, _ENDED, _SESSIONS, _BYTES_CLIENT, _BYTES_TARGET = range(6)
_REASON0 = 6
_STATUS0 = _REASON0 + len(REASONS) + 1
_CODE0 = _STATUS0 + len(STATUSES) + 1
SLOT_LEN = _CODE0 + len(CLOSE_CODES) + 1  # integers per worker
_WORD = 8


class ByteCounts(Protocol):
    """What a ``Relay`` exposes: bytes received from each side so far."""

    received_from_client: int
    received_from_target: int


@dataclass(frozen=True)
class WorkerCounts:
    """One worker's share of a group ``Snapshot`` (the ``worker`` label, from 1)."""

    worker: int
    open: int
    total: int
    relaying: int


@dataclass(frozen=True)
class Snapshot:
    """The counters at one instant (see ``Metrics.snapshot``)."""

    open: int
    total: int
    sessions: int
    relaying: int  # sessions open (101 sent, connection not finished)
    failed: dict[str, int] = field(default_factory=dict)
    handshake_failures: dict[int | str, int] = field(default_factory=dict)
    close_codes: dict[int | str, int] = field(default_factory=dict)
    bytes_from_client: int = 0
    bytes_from_target: int = 0
    #: ``--workers``: each worker's share (empty for one process).
    workers: tuple[WorkerCounts, ...] = ()


def _reason_index(reason: str) -> int:
    return _REASON0 + (REASONS.index(reason) if reason in REASONS else len(REASONS))


def _status_index(status: int) -> int:
    return _STATUS0 + (status - STATUSES.start if status in STATUSES else len(STATUSES))


def _code_index(code: int) -> int:
    return _CODE0 + (code - CLOSE_CODES.start if code in CLOSE_CODES else len(CLOSE_CODES))


def _labelled(values: list[int], first: int, keys: list[str] | list[int] | range,
              ) -> dict[int | str, int]:
    """The non-zero entries of a label array (its last entry is ``other``)."""
    found: dict[int | str, int] = {}
    for offset, key in enumerate([*keys, OTHER]):
        if values[first + offset]:
            found[key] = values[first + offset]
    return found


class Metrics:
    """Server-wide counters; every method may be called from any thread.

    Args:
        workers: ``--workers`` above 1: map the shared block now (in the parent, before
            it forks); each worker then calls ``attach``.
    """

    def __init__(self, workers: int = 1) -> None:
        self._lock = threading.Lock()
        self._workers = max(1, workers)
        size = self._workers * SLOT_LEN * _WORD
        # mmap(-1, ...) is anonymous and MAP_SHARED: forked workers see each other's writes.
        buffer = memoryview(mmap.mmap(-1, size) if self._workers > 1 else bytearray(size))
        self._all = buffer.cast("q")
        # Everything below is guarded by _lock.
        self._slot = self._all[:SLOT_LEN]  # this process's counters
        self._done_client = 0  # bytes of finished relays; live ones are summed per publish
        self._done_target = 0
        self._live: dict[int, ByteCounts] = {}

    def attach(self, index: int) -> None:
        """In worker ``index`` (from 0), after the fork: count into its slot from now on.

        A restarted worker continues its predecessor's counters; the connections and
        sessions that predecessor had open died with it, so they count as ended.
        """
        with self._lock:
            self._slot = slot = self._all[index * SLOT_LEN:(index + 1) * SLOT_LEN]
            slot[_FINISHED] = slot[_STARTED]
            slot[_ENDED] = slot[_SESSIONS]
            self._done_client, self._done_target = slot[_BYTES_CLIENT], slot[_BYTES_TARGET]
            self._live.clear()

    def connection_started(self) -> None:
        with self._lock:
            self._slot[_STARTED] += 1

    def session_started(self) -> None:
        """A 101 was sent (the session counts as open until its connection finishes)."""
        with self._lock:
            self._slot[_SESSIONS] += 1

    def connection_finished(self, *, failure: str | None = None, status: int | None = None,
                            upgrade: bool = False, close_code: int | None = None) -> None:
        """Count one ended connection.

        Args:
            failure: why it failed (``token``, ``auth``, ``handshake``, ``target``, ...).
            status: the HTTP status answered to a WebSocket request (>= 400 counts as a
                handshake failure).
            upgrade: a 101 was sent (``session_started`` was called).
            close_code: the WebSocket close code the session ended with.
        """
        with self._lock:
            slot = self._slot
            if failure:
                slot[_reason_index(failure)] += 1
            if status is not None and status >= 400:
                slot[_status_index(status)] += 1
            if close_code is not None:
                slot[_code_index(close_code)] += 1
            if upgrade:
                slot[_ENDED] += 1
            slot[_FINISHED] += 1

    def relay_started(self, relay: ByteCounts) -> None:
        with self._lock:
            self._live[id(relay)] = relay

    def relay_finished(self, relay: ByteCounts) -> None:
        """Move the relay's byte counts into the totals (once; idempotent)."""
        with self._lock:
            if self._live.pop(id(relay), None) is not None:
                self._done_client += relay.received_from_client
                self._done_target += relay.received_from_target
                # Not a full publish (that sums every live relay): at least the finished
                # bytes, without lowering what a publish already counted of the others.
                self._raise(self._done_client, self._done_target)

    def publish(self) -> None:
        """Write the bytes of the live relays into this worker's slot, where the other
        workers' scrapes read them (the runner calls it on every tick with ``--workers``)."""
        with self._lock:
            self._publish()

    def _publish(self) -> None:
        live = list(self._live.values())
        self._raise(self._done_client + sum(r.received_from_client for r in live),
                    self._done_target + sum(r.received_from_target for r in live))

    def _raise(self, client: int, target: int) -> None:
        """Byte counters only grow, whatever order publishes come in; held: ``_lock``."""
        slot = self._slot
        slot[_BYTES_CLIENT] = max(slot[_BYTES_CLIENT], client)
        slot[_BYTES_TARGET] = max(slot[_BYTES_TARGET], target)

    def snapshot(self, open_now: int | None = None) -> Snapshot:
        """The counters now: of every worker with ``--workers`` (see the module docstring).

        ``open_now`` overrides the open-connection gauge of one process (the server's own
        count also covers connections that failed before a handler was set up).
        """
        with self._lock:
            self._publish()
            if self._workers == 1:
                return _snapshot(self._slot.tolist(), open_now)
        rows = [self._all[index * SLOT_LEN:(index + 1) * SLOT_LEN].tolist()
                for index in range(self._workers)]
        total = _snapshot([sum(column) for column in zip(*rows)], None)
        shares = tuple(WorkerCounts(worker=index + 1, open=_open(row), total=row[_STARTED],
                                    relaying=_relaying(row))
                       for index, row in enumerate(rows))
        # Gauges are sums of the workers' gauges (each clamped at 0 on its own).
        return dataclasses.replace(total, open=sum(w.open for w in shares),
                                   relaying=sum(w.relaying for w in shares), workers=shares)


def _open(row: list[int]) -> int:
    return max(0, row[_STARTED] - row[_FINISHED])


def _relaying(row: list[int]) -> int:
    return max(0, row[_SESSIONS] - row[_ENDED])


def _snapshot(row: list[int], open_now: int | None) -> Snapshot:
    failed = _labelled(row, _REASON0, list(REASONS))
    return Snapshot(
        open=_open(row) if open_now is None else open_now,
        total=row[_STARTED],
        sessions=row[_SESSIONS],
        relaying=_relaying(row),
        failed={str(reason): count for reason, count in failed.items()},
        handshake_failures=_labelled(row, _STATUS0, STATUSES),
        close_codes=_labelled(row, _CODE0, CLOSE_CODES),
        bytes_from_client=row[_BYTES_CLIENT],
        bytes_from_target=row[_BYTES_TARGET],
    )


def _sorted(counts: dict[int | str, int]) -> list[tuple[int | str, int]]:
    """Numbers in order, then ``other``."""
    return sorted(counts.items(), key=lambda item: (isinstance(item[0], str),
                                                    item[0] if isinstance(item[0], int) else 0))


def _family(lines: list[str], name: str, kind: str, text: str) -> str:
    full = f"{PREFIX}_{name}"
    lines.append(f"# HELP {full} {text}")
    lines.append(f"# TYPE {full} {kind}")
    return full


def render(snap: Snapshot) -> str:
    """The Prometheus text exposition (version 0.0.4) of ``snap``."""
    lines: list[str] = []
    name = _family(lines, "connections_open", "gauge", "Connections being handled now.")
    lines.append(f"{name} {snap.open}")
    name = _family(lines, "connections_total", "counter", "Connections accepted.")
    lines.append(f"{name} {snap.total}")
    name = _family(lines, "sessions_total", "counter", "WebSocket upgrades answered with 101.")
    lines.append(f"{name} {snap.sessions}")
    name = _family(lines, "sessions_open", "gauge", "WebSocket sessions relaying now.")
    lines.append(f"{name} {snap.relaying}")
    name = _family(lines, "connections_failed_total", "counter",
                   "Connections that failed, by reason.")
    for reason, count in sorted(snap.failed.items()):
        lines.append(f'{name}{{reason="{reason}"}} {count}')
    name = _family(lines, "bytes_received_total", "counter",
                   "Bytes received, by side (client bytes include WebSocket framing).")
    lines.append(f'{name}{{from="client"}} {snap.bytes_from_client}')
    lines.append(f'{name}{{from="target"}} {snap.bytes_from_target}')
    name = _family(lines, "handshake_failures_total", "counter",
                   "WebSocket requests answered with an HTTP error, by status.")
    for status, count in _sorted(snap.handshake_failures):
        lines.append(f'{name}{{status="{status}"}} {count}')
    name = _family(lines, "close_codes_total", "counter", "Ended sessions, by close code.")
    for code, count in _sorted(snap.close_codes):
        lines.append(f'{name}{{code="{code}"}} {count}')
    _render_workers(lines, snap.workers)
    return "\n".join(lines) + "\n"


def _render_workers(lines: list[str], shares: tuple[WorkerCounts, ...]) -> None:
    """``--workers``: each worker's share, in families of their own (a ``worker`` label on
    the totals' families would make Prometheus' ``sum()`` count everything twice)."""
    if not shares:
        return
    for suffix, kind, text, values in (
            ("connections_total", "counter", "Connections accepted, by worker.",
             [w.total for w in shares]),
            ("connections_open", "gauge", "Connections being handled now, by worker.",
             [w.open for w in shares]),
            ("sessions_open", "gauge", "WebSocket sessions relaying now, by worker.",
             [w.relaying for w in shares])):
        name = _family(lines, f"worker_{suffix}", kind, text)
        for share, value in zip(shares, values):
            lines.append(f'{name}{{worker="{share.worker}"}} {value}')


def stats_line(snap: Snapshot) -> str:
    """The same counters as one log line (``--stats-interval``)."""
    failed = ",".join(f"{k}={v}" for k, v in sorted(snap.failed.items())) or "0"
    closes = ",".join(f"{k}={v}" for k, v in _sorted(snap.close_codes)) or "-"
    return (f"stats: open={snap.open} total={snap.total} sessions={snap.sessions} "
            f"relaying={snap.relaying} failed={failed} "
            f"bytes_from_client={snap.bytes_from_client} "
            f"bytes_from_target={snap.bytes_from_target} close_codes={closes}")
