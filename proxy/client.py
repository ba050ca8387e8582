"""``python -m proxy.client`` and the ``websockify-client`` script (issue #20 §2)."""

from proxy.process.clientmain import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
