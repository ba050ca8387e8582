"""``python -m proxy`` runs the same entry point as the ``websockify`` console script."""

from proxy.process.cli import main

raise SystemExit(main())
