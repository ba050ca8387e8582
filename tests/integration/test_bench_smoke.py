"""Smoke test of scripts/bench: a --quick run against ours and a direct connection.

Uses this interpreter for "ours" (BENCH_OURS_PYTHON) and tests/node's ws for the load
generator (BENCH_NODE), so it installs nothing; peers live in a tmp BENCH_DIR.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.node]

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"


def test_a_quick_bench_run_prints_a_table_with_numbers(tmp_path: Path) -> None:
    """`scripts/bench --quick --only ours,direct,chain` finishes and prints figures for
    each, behind both target servers (issue #19); "chain" is websockify-client in front of
    ours, over TCP (issue #20 §2)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").is_file():
        pytest.skip("Node package ws missing: run `npm install --prefix tests/node`")
    peers = "ours,direct" + (",socat" if shutil.which("socat") else "") + ",chain"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBSOCKIFY_")}
    env.update(BENCH_DIR=str(tmp_path), BENCH_NODE=str(NODE_DIR), BENCH_OURS_PYTHON=sys.executable)
    out = tmp_path / "report.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench"), "--quick", "--no-setup",
         "--only", peers, "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=24 * TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    # Both target servers (issue #19), each with its own medians table.
    node, python = res.stdout.split("Behind the one-process Python epoll target server")
    assert "Behind the Node target server (backend.mjs):" in node, res.stdout
    for part in (node, python):
        for label in ("client→target 64 KiB msgs", "target→client 64 KiB reads",
                      "connections/s", "32 B echo p50", "echo p50, 2 streams",
                      "echo p99, 8 streams"):
            line = next(line for line in part.splitlines() if line.startswith(label))
            cells = line.rsplit(")", 1)[1]  # after the unit; figures hold no ")"
            figures = re.findall(r"\d[\d,.]* \[[\d,.]+–[\d,.]+\]|—", cells)
            assert len(figures) == len(peers.split(",")), line  # one cell per peer
            if "streams" not in label:
                assert "—" not in figures, line
            # Under load a quick run may get no echo sample on the streams rows (seen on a
            # loaded 2-core machine, for ours and for direct): "—" is allowed there.
        # The proxy's CPU per connection: a figure for ours, none for a direct connection.
        line = next(line for line in part.splitlines()
                    if line.startswith("proxy CPU per connection (µs)"))
        assert re.match(r"proxy CPU per connection \(µs\)\s+[\d,.]+ \[.*\]\s+—", line), line
    assert re.search(r"^ours\s+200\s+200\s+200\s", res.stdout, re.M), res.stdout
    assert re.search(r"^client→ours \(TCP\)\s+200\s+200\s+200\s", res.stdout, re.M), res.stdout
    assert out.is_file()
