"""``websockify.auth_plugins``: our auth plugins under websockify's module name (#18).

The names are the very classes of ``proxy.access.auth``: a user's plugin that raises
``websockify.auth_plugins.AuthenticationError`` raises ours.
"""

from proxy.access.auth import (
    AuthenticationError,
    BasePlugin,
    BasicHTTPAuth,
    ClientCertCNAuth,
    ExpectOrigin,
    InvalidOriginError,
)

__all__ = [
    "AuthenticationError",
    "BasePlugin",
    "BasicHTTPAuth",
    "ClientCertCNAuth",
    "ExpectOrigin",
    "InvalidOriginError",
]
