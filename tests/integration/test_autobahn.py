"""Autobahn|Testsuite conformance: no case that passes for websockify 0.13.0 fails for us.

Runs ``scripts/autobahn`` (fuzzingclient of autobahntestsuite 25.10.1 -> the proxy with its
default options, in this interpreter -> TCP echo) and fails on any case that is OK,
NON-STRICT or INFORMATIONAL in websockify's results (scripts/autobahn.d/websockify-0.13.0.json)
but FAILED, UNIMPLEMENTED or missing in ours. The script builds (or reuses) the Python 2.7
virtualenv ``.venv-autobahn`` itself; the first build takes about 10 s with PyPI reachable.

Groups left out, and why:

* 9 (limits and performance): about six minutes of large messages, too slow for CI;
  ``scripts/autobahn`` with no options runs it (results in docs/reliability.rst).
* 12 and 13 (permessage-deflate): the proxy does not negotiate compression yet, so every
  case is UNIMPLEMENTED, as for websockify; they cannot pass and cannot regress. Add them
  here, with the proxy option that enables compression, once it exists (issue 9).

Skipped only when no Python 2.7 interpreter is found (the script exits with status 3).

``KNOWN_REGRESSIONS`` lists the regressions of the current proxy, each with its cause; they
are tolerated (not required: they depend on how TCP reads fall, so a run may pass them) and
must be removed with the fix in the proxy. Any other regression fails the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "autobahn"
EXCLUDED = "9.*,12.*,13.*"
#: Cases passing for websockify 0.13.0 that may still fail for us, with the cause.
KNOWN_REGRESSIONS = {
    # A binary message of 65535/65536 bytes spans more than one 64 KiB recv(). Fixed in
    # the proxy: stream.ClientStream forwards each frame in one write (bounded) and the
    # relay merges a short large target read with what follows; 1.2.6-1.2.8 pass since
    # (scripts/autobahn --cases '1.2.*', 2026-11-26). Still tolerated because loopback
    # TCP (MSS 65483) can split the 64 KiB echo inside the echo server, which no proxy
    # can join: websockify passes them by the same luck of timing.
    "1.2.6": "binary 65535 bytes: the echo may come back in two messages (TCP split)",
    "1.2.7": "binary 65536 bytes: the echo may come back in two messages (TCP split)",
    "1.2.8": "binary 65536 bytes in 997-byte chops: the echo may come back split (TCP)",
}
#: scripts/autobahn's exit status when there is no Python 2.7.
EXIT_NO_PYTHON2 = 3
#: Bound on the fuzzingclient run (about 4 minutes here), scaled like every test timeout.
WSTEST_TIMEOUT = 70 * TIMEOUT
#: Bound on the whole script: venv setup (pip) plus the run.
SCRIPT_TIMEOUT = WSTEST_TIMEOUT + 40 * TIMEOUT


@pytest.mark.timeout(SCRIPT_TIMEOUT + 30)
def test_no_regression_against_websockify(tmp_path: Path) -> None:
    out = tmp_path / "autobahn"
    cmd = [
        sys.executable, str(SCRIPT), "--no-fail",
        "--exclude", EXCLUDED,
        "--out", str(out),
        "--proxy-python", sys.executable,
        "--timeout", str(WSTEST_TIMEOUT),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBSOCKIFY_")}
    with open(tmp_path / "stdout.txt", "w+") as stdout, \
            open(tmp_path / "stderr.txt", "w+") as stderr:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr)
        try:
            status = proc.wait(SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            # SIGTERM lets the script stop the echo server, the proxy and wstest it started.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(3 * TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            pytest.fail(f"scripts/autobahn still running after {SCRIPT_TIMEOUT:.0f} s")
        stdout.seek(0)
        stderr.seek(0)
        output = stdout.read() + stderr.read()

    if status == EXIT_NO_PYTHON2:
        pytest.skip(f"autobahntestsuite needs Python 2.7, none found: {output.strip()}")
    assert status == 0, f"scripts/autobahn exited with status {status}:\n{output}"
    # The run covered every group it was asked for (a wstest that ran nothing passes too).
    summary = (out / "summary.txt").read_text()
    for group in ("1 ", "2 ", "3 ", "4 ", "5 ", "6 ", "7 ", "10 "):
        assert any(line.startswith(group) for line in summary.splitlines()), summary
    print(summary)  # shown with -s or -rP: the per-group table of this run
    regressions = set(json.loads((out / "regressions.json").read_text()))
    unexpected = sorted(regressions - set(KNOWN_REGRESSIONS))
    assert not unexpected, f"regressions against websockify 0.13.0: {unexpected}\n{summary}"
