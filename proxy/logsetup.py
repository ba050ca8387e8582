"""Root logging for the command: stderr with bare messages, as websockify (spec §3.1).

Only ``cli`` calls this; library code logs through module loggers and never configures.
"""

from __future__ import annotations

import logging
import sys


def configure(verbose: bool) -> None:
    """Send every record to stderr as ``%(message)s``; DEBUG with ``-v``, else INFO."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
