"""Compatibility shim: ``python -m proxy.replay`` runs ``proxy.observe.replay`` (issue #17)."""

from proxy.observe.replay import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
