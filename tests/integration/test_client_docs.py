"""``websockify-client``'s man page and ``--help`` (issue #20 "Done when")."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.process.clientmain import build_parser
from tests.conftest import TIMEOUT
from tests.integration.test_packaging import PRIVATE_REFERENCE
from tests.support.process import clean_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAN_PAGE = ROOT / "docs" / "websockify-client.1"


def test_the_man_page_names_every_option_and_cites_nothing_private() -> None:
    text = MAN_PAGE.read_text().replace("\\-", "-")
    options = {name for action in build_parser()._actions for name in action.option_strings
               if name.startswith("--") and name != "--help"}
    assert sorted(o for o in options if o not in text) == []
    assert [m[0] for m in PRIVATE_REFERENCE.finditer(text)] == []


@pytest.mark.skipif(not shutil.which("groff"), reason="groff not installed (scripts/test "
                    "installs groff-base)")
def test_the_man_page_renders_without_warnings() -> None:
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(MAN_PAGE)],
                            capture_output=True, env={**clean_env(), "LC_ALL": "C.UTF-8"},
                            timeout=6 * TIMEOUT, check=False)
    assert (result.returncode, result.stderr) == (0, b"")
    assert "WEBSOCKIFY-CLIENT(1)" in re.sub(r".\x08", "", result.stdout.decode())


def test_help_shows_the_synopsis_and_a_bad_url_is_a_usage_error() -> None:
    command = [sys.executable, "-m", "proxy.client"]
    shown = subprocess.run([*command, "--help"], capture_output=True, env=clean_env(),
                           timeout=2 * TIMEOUT, check=False)
    assert shown.returncode == 0
    assert shown.stdout.decode().startswith(
        "usage: websockify-client [-h] [-v] [--log-file FILE]\n"
        "                         [--log-format {classic,json}] [--traffic] [--once]")
    bad = subprocess.run([*command, "5901", "http://h/"], capture_output=True,
                         env=clean_env(), timeout=2 * TIMEOUT, check=False)
    assert bad.returncode == 2
    assert bad.stderr.decode().endswith(
        "websockify-client: error: URL must start with ws:// or wss://: http://h/\n")
