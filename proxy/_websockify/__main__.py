"""``python -m websockify``: the ``websockify`` command, as with websockify itself (#18)."""

from proxy.cli import main

raise SystemExit(main())
