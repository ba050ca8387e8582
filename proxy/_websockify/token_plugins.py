"""``websockify.token_plugins``: our token plugins under websockify's module name (#18).

The names are the very classes of ``proxy.access.tokens``, so ``--token-plugin
websockify.token_plugins.TokenFile`` and ``--token-plugin TokenFile`` build the same
thing, and a user's subclass of ``BasePlugin`` is one of ours.
"""

from proxy.access.tokens import (
    BasePlugin,
    BaseTokenAPI,
    JSONTokenApi,
    JWTTokenApi,
    ReadOnlyTokenFile,
    TokenFile,
    TokenFileName,
    TokenRedis,
    UnixDomainSocketDirectory,
    parse_source_args,
)

__all__ = [
    "BasePlugin",
    "BaseTokenAPI",
    "JSONTokenApi",
    "JWTTokenApi",
    "ReadOnlyTokenFile",
    "TokenFile",
    "TokenFileName",
    "TokenRedis",
    "UnixDomainSocketDirectory",
    "parse_source_args",
]
