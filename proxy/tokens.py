"""Compatibility shim: ``proxy.tokens`` is ``proxy.access.tokens`` (issue #17 moved it).

Kept because ``--token-plugin NAME`` means ``proxy.tokens.NAME`` in users' command lines,
docs and error messages, and plugins import these classes; nothing in ``proxy`` imports it.
"""

from proxy.access.tokens import *  # noqa: F401,F403 (re-exports the package's __all__)
from proxy.access.tokens import __all__ as __all__  # noqa: F401
