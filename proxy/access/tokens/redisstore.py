"""``TokenRedis``: targets stored in Redis, shared by many proxy instances (spec §8.6).

Talks to Redis itself (redis-py, the ``redis`` extra) but never sees our sockets. Not
named ``redis.py`` so it cannot shadow the library.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from proxy.errors import StartupError
from proxy.access.tokens.base import BasePlugin, import_extra, parse_source_args

log = logging.getLogger(__name__)

#: Bound on connecting to Redis and on each command; websockify has none.
REDIS_TIMEOUT = 5.0  # seconds
SOURCE_FORMAT_ERROR = ("The provided --token-source='%s' is not in the expected format "
                       "<host>[:<port>[:<db>[:<password>[:<namespace>]]]]")


def parse_redis_source(src: str) -> tuple[str, int, int, str | None, str]:
    """``host[:port[:db[:password[:namespace]]]]`` -> (host, port, db, password, prefix).

    Empty fields take the defaults (6379, 0, no password, no namespace); a field in
    double quotes may contain colons. ``prefix`` is ``"namespace:"`` or ``""``.

    Raises:
        ValueError: too many fields, or a port or db that is not a number.
    """
    fields = parse_source_args(src)
    if not 1 <= len(fields) <= 5 or not fields[0]:
        raise ValueError(src)
    fields += [""] * (5 - len(fields))
    host, port, db, password, namespace = fields
    return (host, int(port or 6379), int(db or 0), password or None,
            f"{namespace}:" if namespace else "")


def parse_redis_value(value: str) -> list[str] | None:
    """A stored target, stripped: ``{"host": "h:p"}`` or ``h:p`` -> ``[h, p]``.

    Logs websockify's error lines and returns None for anything else (spec §8.6).
    """
    value = value.strip()
    log.debug("response from redis : %s", value)
    if value.startswith("{"):
        try:
            combo = json.loads(value)
            host, port = combo["host"].split(":")
        except KeyError:
            log.error("Unable to find 'host' key in JSON token: %s", value)
            return None
        except (ValueError, TypeError, AttributeError):
            log.error("Unable to decode JSON token: %s", value)
            return None
    elif re.match(r"\S+:\S+", value) and value.count(":") == 1:
        host, port = value.split(":")
    else:
        log.error("Unable to parse token: %s", value)
        return None
    log.debug("host: %s, port: %s", host, port)
    return [host, port]


class TokenRedis(BasePlugin):
    """Looks the token up in Redis; the value is JSON ``{"host": "h:p"}`` or plain ``h:p``.

    Source ``host[:port[:db[:password[:namespace]]]]``; the key is ``namespace:token``
    or ``token``. One redis-py client (a thread-safe connection pool) serves every
    thread; websockify connected anew per lookup. A Redis that cannot be reached raises
    ConnectionError/TimeoutError (``proxy.access.resolve`` answers 502/504). A bad source is a
    startup error (exit 1; websockify logs it and exits 0, spec §2.5).
    """

    def __init__(self, src: str | None = None) -> None:
        super().__init__(src)
        redis = import_extra("redis", "TokenRedis", "redis")
        self._redis_errors = redis.exceptions
        try:
            host, port, db, password, self._prefix = parse_redis_source(src or "")
        except ValueError:
            raise StartupError(SOURCE_FORMAT_ERROR % src) from None
        # websockify's attribute names: subclasses and its own tests read them (#18).
        self._server, self._port, self._db, self._password = host, port, db, password
        self._namespace = self._prefix
        self._client = redis.Redis(host=host, port=port, db=db, password=password,
                                   socket_timeout=REDIS_TIMEOUT,
                                   socket_connect_timeout=REDIS_TIMEOUT)
        log.info("TokenRedis backend initialized (%s:%s)", host, port)

    def lookup(self, token: str) -> Any:
        log.info("resolving token '%s'", token)
        errors = self._redis_errors
        try:
            stuff = self._client.get(self._prefix + token)
        except errors.TimeoutError as exc:
            raise TimeoutError(f"redis: {exc}") from exc
        except errors.RedisError as exc:
            raise ConnectionError(f"redis: {exc}") from exc
        if stuff is None:
            return None
        return parse_redis_value(stuff.decode("utf-8", errors="replace"))

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()
