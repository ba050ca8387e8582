"""Token plugins that ask a web service or verify a signed token: ``BaseTokenAPI``,
``JSONTokenApi`` and ``JWTTokenApi`` (spec §8.4, §8.5).

They do their own network or file I/O but never see our sockets. A service that cannot
be reached raises OSError (``TimeoutError`` for a timeout); ``proxy.access.resolve`` maps it.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from proxy.errors import StartupError
from proxy.access.tokens.base import BasePlugin, import_extra
from proxy.access.tokens.files import warn_if_unreadable

log = logging.getLogger(__name__)

#: Bound on one token-API request; websockify's ``requests.get`` has none (spec §13.15).
TOKEN_API_TIMEOUT = 5.0  # seconds
#: Largest token-API answer read.
MAX_ANSWER = 64 * 1024  # bytes
#: Tokens that are RFC 3986 dot-segments (``%2E%2E`` arrives decoded as ``..``).
DOT_SEGMENTS = (".", "..")


@dataclass(frozen=True)
class APIResponse:
    """The parts of a ``requests.Response`` that websockify's ``process_result`` uses."""

    status_code: int
    content: bytes

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class BaseTokenAPI(BasePlugin):
    """GET the ``--token-source`` URL with ``%s`` replaced by the token; answer ``host:port``.

    Beyond websockify: the token is URL-encoded (websockify inserts it raw, so ``a/b``
    became a path segment, spec §8.4), the tokens ``.`` and ``..`` are not found without
    a request, and the request has a timeout (``timeout`` attribute, seconds). A non-2xx
    answer means "not found". Subclasses may override ``process_result(resp)`` as with
    websockify; ``resp`` has ``text``, ``content``, ``json()``, ``status_code`` and ``ok``.
    """

    timeout = TOKEN_API_TIMEOUT

    def __init__(self, src: str | None = None) -> None:
        super().__init__(src)
        if not src or "%s" not in src:
            raise StartupError(f"{type(self).__name__} needs --token-source URL with a %s "
                               "where the token goes")
        self._url = src

    def url_for(self, token: str) -> str:
        return self._url.replace("%s", quote(token, safe=""))

    def process_result(self, resp: APIResponse) -> Any:
        """``host:port`` (exactly one colon) -> ``[host, port]``."""
        host, port = resp.text.strip().split(":")
        return [host, port]

    def lookup(self, token: str) -> Any:
        if token in DOT_SEGMENTS:
            # Quoting leaves "." and ".." as they are (unreserved), so they would become
            # path segments, which a normalising server resolves: "/api/.." answered for
            # "/" (#15 Reliability 2). Not found, without asking.
            return None
        resp = self.fetch(self.url_for(token))
        if not resp.ok:
            return None
        try:
            return self.process_result(resp)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{type(self).__name__} got {resp.content[:200]!r}: {exc!r}") \
                from exc

    def fetch(self, url: str) -> APIResponse:
        """GET ``url``; an HTTP error status is an answer, a network failure is raised.

        Raises:
            TimeoutError: no answer within ``timeout``.
            ConnectionError: the service could not be reached.
        """
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:
                return APIResponse(answer.status, answer.read(MAX_ANSWER))
        except urllib.error.HTTPError as exc:
            exc.close()
            return APIResponse(exc.code, b"")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise TimeoutError(f"token API {url}: timed out") from exc
            raise ConnectionError(f"token API {url}: {exc.reason}") from exc
        except TimeoutError as exc:
            raise TimeoutError(f"token API {url}: timed out") from exc


class JSONTokenApi(BaseTokenAPI):
    """As ``BaseTokenAPI``, the answer being JSON with ``host`` and ``port`` keys."""

    def process_result(self, resp: APIResponse) -> Any:
        answer = resp.json()
        return (answer["host"], answer["port"])


class JWTTokenApi(BasePlugin):
    """The token is a JWT (signed, or encrypted holding a signed one) with ``host``/``port``.

    The key file is read on every lookup, as websockify does (spec §8.5): PEM first, else
    its text (stripped) is a symmetric key's base64url ``k``. ``nbf`` and ``exp`` are
    checked with websockify's log lines. Needs the ``jwt`` extra (jwcrypto).
    """

    def __init__(self, src: str | None = None) -> None:
        super().__init__(src)
        self._jwk = import_extra("jwcrypto.jwk", "JWTTokenApi", "jwt")
        self._jwt = import_extra("jwcrypto.jwt", "JWTTokenApi", "jwt")
        self._errors = import_extra("jwcrypto.common", "JWTTokenApi", "jwt").JWException
        if not src:
            raise StartupError("JWTTokenApi needs --token-source KEYFILE")
        self._path = os.path.abspath(src)
        warn_if_unreadable(self._path)  # read on every lookup; may appear later

    def _load_key(self) -> Any:
        try:
            with open(self._path, "rb") as key_file:
                data = key_file.read()
        except OSError as exc:
            log.error("Error loading key file: %s", exc)
            return None
        key = self._jwk.JWK()
        try:
            key.import_from_pem(data)
        except (ValueError, TypeError, self._errors):
            try:
                key.import_key(k=data.decode("utf-8").strip(), kty="oct")
            except (ValueError, TypeError, self._errors):
                log.error("Failed to correctly parse key data!")
                return None
        return key

    def _parse(self, key: Any, token: str) -> Any:
        """A verified (JWS) or decrypted (JWE) ``jwcrypto.jwt.JWT``.

        jwcrypto >= 1.5 must be told which one to expect (it refuses a JWE otherwise, which
        breaks websockify's encrypted tokens); a compact JWE has five parts, a JWS three.
        """
        options: dict[str, Any] = {"check_claims": False}
        if "expected_type" in inspect.signature(self._jwt.JWT).parameters:
            options["expected_type"] = "JWE" if token.count(".") == 4 else "JWS"
        return self._jwt.JWT(key=key, jwt=token, **options)

    def _claims(self, key: Any, token: str) -> dict[str, Any] | None:
        try:
            # jwcrypto's own exp/nbf checks are off: websockify's are below, with its logs.
            parsed = self._parse(key, token)
            if "enc" in json.loads(parsed.header):
                # Encrypted: the payload is itself a JWT, verified with the same key.
                parsed = self._parse(key, parsed.claims)
            claims = json.loads(parsed.claims)
            if not isinstance(claims, dict):
                raise ValueError("claims are not a JSON object")
            return claims
        except (ValueError, TypeError, KeyError, self._errors) as exc:
            log.error("Failed to parse token: %s", exc)
            return None

    def lookup(self, token: str) -> Any:
        key = self._load_key()
        claims = None if key is None else self._claims(key, token)
        if claims is None:
            return None
        now = time.time()
        if "nbf" in claims and now < claims["nbf"]:
            log.warning("Token can not be used yet!")
            return None
        if "exp" in claims and now > claims["exp"]:
            log.warning("Token has expired!")
            return None
        if "host" not in claims or "port" not in claims:
            log.error("Failed to parse token: %r", "host" if "host" not in claims else "port")
            return None
        return (claims["host"], claims["port"])
