"""proxy.observe.probes: the health and metrics paths and the health answer (issue 10)."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from proxy.observe import probes
from proxy.settings import Settings


def test_probe_routes_ignore_the_query() -> None:
    s = Settings(health_path="/healthz", metrics_path="/metrics")
    assert probes.route(s, "/healthz?x=1") == probes.HEALTH
    assert probes.route(s, "/metrics") == probes.METRICS
    assert probes.route(s, "/metrics/") is None
    assert probes.route(Settings(), "/healthz") is None


@pytest.mark.parametrize(("draining", "live", "limit", "free", "status", "text"), [
    (False, 1, 100, 1000, 200, "ok"),
    (False, 1, 0, None, 200, "ok"),
    (True, 1, 100, 1000, 503, "draining"),
    (False, 100, 100, 1000, 503, "at connection limit"),
    (False, 1, 100, 5, 503, "few file descriptors left"),
])
def test_health(draining: bool, live: int, limit: int, free: int | None, status: int,
                text: str) -> None:
    assert probes.health(draining, live, limit, free) == probes.Health(HTTPStatus(status), text)


def test_free_fds_is_a_number_here() -> None:
    free = probes.free_fds()
    assert free is None or free > 0
