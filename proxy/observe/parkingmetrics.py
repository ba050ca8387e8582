"""The repeater's counters on ``--metrics-path`` (issue #20 §1): how many servers are
parked now and how often each parking rule applied (``proxy.transport.parking``)."""

from __future__ import annotations

from proxy.observe.metrics import PREFIX
from proxy.transport import parking

#: Every event, so a counter is there (at 0) before it first happens.
EVENTS = (parking.PARKED, parking.REPLACED, parking.PAIRED, parking.DROPPED,
          parking.REFUSED_FULL, parking.REFUSED_PER_IP, parking.REFUSED_ADDRESS,
          parking.REFUSED_ID, parking.REFUSED_BUSY)


def render(lot: parking.ParkingLot) -> str:
    """Prometheus text lines for ``lot``, to follow ``metrics.render``."""
    parked = f"{PREFIX}_reverse_parked"
    events = f"{PREFIX}_reverse_events_total"
    counts = lot.counts()
    lines = [f"# HELP {parked} VNC servers parked by --reverse-listen now.",
             f"# TYPE {parked} gauge", f"{parked} {len(lot.parked_ids())}",
             f"# HELP {events} Servers dialling in, by what the parking rules did.",
             f"# TYPE {events} counter"]
    lines += [f'{events}{{event="{event}"}} {counts.get(event, 0)}' for event in EVENTS]
    return "\n".join(lines) + "\n"


def stats_text(lot: parking.ParkingLot) -> str:
    """The same counters for the ``--stats-interval`` line: ``parked=N reverse=EVENT=N,...``
    (events that have not happened are left out; ``-`` when none has)."""
    counts = lot.counts()
    events = ",".join(f"{event}={counts[event]}" for event in EVENTS if counts.get(event))
    return f"parked={len(lot.parked_ids())} reverse={events or '-'}"
