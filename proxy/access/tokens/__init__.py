"""Token plugins with websockify's names and interface, and token extraction (spec §8).

``--token-plugin NAME`` means ``proxy.tokens.NAME``. A plugin is built once with
``--token-source`` and shared by all connection threads (websockify built one per forked
child), so ``lookup`` must be thread-safe. Optional dependencies (jwcrypto, redis) are
imported when their plugin is built, never here.
"""

from __future__ import annotations

from proxy.access.tokens.api import APIResponse, BaseTokenAPI, JSONTokenApi, JWTTokenApi
from proxy.access.tokens.base import BasePlugin, parse_source_args, target_from_lookup
from proxy.access.tokens.extract import (
    extract_token,
    parse_token_from,
    token_from_cookie,
    token_from_header,
    token_from_host,
    token_from_path,
    token_from_query,
)
from proxy.access.tokens.files import (
    ReadOnlyTokenFile,
    TokenFile,
    TokenFileName,
    UnixDomainSocketDirectory,
)
from proxy.access.tokens.redisstore import TokenRedis

__all__ = [
    "APIResponse",
    "BasePlugin",
    "BaseTokenAPI",
    "JSONTokenApi",
    "JWTTokenApi",
    "ReadOnlyTokenFile",
    "TokenFile",
    "TokenFileName",
    "TokenRedis",
    "UnixDomainSocketDirectory",
    "extract_token",
    "parse_source_args",
    "parse_token_from",
    "target_from_lookup",
    "token_from_cookie",
    "token_from_header",
    "token_from_host",
    "token_from_path",
    "token_from_query",
]
