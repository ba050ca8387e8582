"""proxy.access.admission: --max-connections and --max-connections-per-ip (issue 9)."""

from __future__ import annotations

import os
import resource

from proxy.access.admission import Admission, default_max_connections
from proxy.settings import Settings


def test_admission_counts_in_all_and_per_address() -> None:
    admission = Admission(Settings(max_connections=3, max_connections_per_ip=2))
    assert admission.enter("a") is None and admission.enter("a") is None
    refused = admission.enter("a")
    assert refused is not None and refused.status == 503
    assert admission.enter("b") is None
    assert admission.enter("c") is not None  # 3 in all
    admission.leave("a")
    assert admission.enter("c") is None
    assert admission.live == 3


def test_a_trusted_proxys_connection_is_counted_per_address_once_its_client_is_known() -> None:
    admission = Admission(Settings(max_connections=10, max_connections_per_ip=1))
    assert admission.enter(None) is None and admission.enter(None) is None  # the balancer
    assert admission.claim("203.0.113.5") is None
    refused = admission.claim("203.0.113.5")
    assert refused is not None and refused.reason == "Too many connections from this address"
    assert admission.live == 2
    admission.leave("203.0.113.5")
    admission.leave(None)  # the refused one: counted in the total only
    assert admission.live == 0
    assert admission.enter("203.0.113.5") is None  # nothing left under either address


def test_with_workers_an_explicit_limit_is_shared_across_fork() -> None:
    admission = Admission(Settings(workers=2, max_connections=2))
    assert admission.enter("a") is None
    pid = os.fork()
    if pid == 0:  # the other worker: one more fits, then the shared total is reached
        ok = admission.enter("b") is None and admission.enter("c") is not None
        os._exit(0 if ok else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert admission.live == 2
    refused = admission.enter("d")
    assert refused is not None and refused.reason == "Too many connections"
    admission.leave("a")
    assert admission.enter("d") is None


def test_with_workers_the_automatic_limit_stays_per_process() -> None:
    admission = Admission(Settings(workers=2))
    assert admission.max_connections == default_max_connections()
    assert admission.enter("a") is None and admission.live == 1


def test_the_default_limit_stays_below_the_open_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 2 * default_max_connections() <= hard
    assert Admission(Settings()).max_connections == default_max_connections()
