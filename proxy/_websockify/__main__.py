"""``python -m websockify``: the ``websockify`` command, as with websockify itself (#18)."""

from proxy.process.cli import main

raise SystemExit(main())
