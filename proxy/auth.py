"""Compatibility shim: ``proxy.auth`` is ``proxy.access.auth`` (issue #17 moved it).

Kept because users name these classes (``--auth-plugin proxy.auth.BasicHTTPAuth``) and
import them in their plugins; nothing in ``proxy`` imports this module.
"""

from proxy.access.auth import (
    SAME_ORIGIN,
    AuthenticationError,
    BasePlugin,
    BasicHTTPAuth,
    ClientCertCNAuth,
    ExpectOrigin,
    InvalidOriginError,
    is_authentication_error,
    same_origin,
)

__all__ = [
    "SAME_ORIGIN",
    "AuthenticationError",
    "BasePlugin",
    "BasicHTTPAuth",
    "ClientCertCNAuth",
    "ExpectOrigin",
    "InvalidOriginError",
    "is_authentication_error",
    "same_origin",
]
