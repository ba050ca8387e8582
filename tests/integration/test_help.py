"""``websockify --help`` byte for byte (issue #17 §2): the parser is built by per-area helper
functions, and splitting or reordering them must not change one byte of the help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT
from tests.support.process import clean_env

pytestmark = pytest.mark.integration

#: Regenerate after a deliberate change of the options with
#: ``COLUMNS=80 python -m proxy --help > tests/integration/golden/websockify-help.txt``
#: (on Python 3.10 to 3.12: see ``expected_help``).
GOLDEN = Path(__file__).parent / "golden" / "websockify-help.txt"


def expected_help() -> str:
    """The golden text, with the one line that argparse itself formats differently on 3.13+.

    Python 3.13 prints a short and long option with a value as ``-c, --config FILE``
    instead of ``-c FILE, --config FILE``, which also moves its help onto that line.
    """
    text = GOLDEN.read_text(encoding="utf-8")
    if sys.version_info >= (3, 13):
        text = text.replace(
            "  -c FILE, --config FILE\n                        read options",
            "  -c, --config FILE     read options")
    return text


def test_help_is_byte_identical_to_the_golden_text(tmp_path: Path) -> None:
    env = {**clean_env(), "COLUMNS": "80"}  # argparse wraps at the terminal width
    done = subprocess.run([sys.executable, "-m", "proxy", "--help"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=6 * TIMEOUT, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == expected_help()
