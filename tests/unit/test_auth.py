"""The built-in auth plugins (spec §9.2) as pure functions of the request headers."""

from __future__ import annotations

import base64
import inspect
import threading
from email.message import Message

import pytest

from proxy.access import resolve
from proxy.access.auth import (
    AuthenticationError,
    BasicHTTPAuth,
    ClientCertCNAuth,
    ExpectOrigin,
    InvalidOriginError,
    same_origin,
)
from proxy.errors import HandshakeError
from proxy.access.plugins import load_plugin
from proxy.settings import Target
from tests.conftest import TIMEOUT


def headers(**fields: str) -> Message:
    message = Message()
    for name, value in fields.items():
        message[name] = value
    return message


def basic(user_pass: bytes) -> str:
    return "Basic " + base64.b64encode(user_pass).decode()


def code_of(plugin: object, message: Message) -> int | None:
    try:
        plugin.authenticate(message, "127.0.0.1", 5900)  # type: ignore[attr-defined]
    except AuthenticationError as exc:
        return exc.code
    return None


# -- BasicHTTPAuth ----------------------------------------------------------------------------


@pytest.mark.parametrize(("authorization", "code"), [
    (basic(b"user:pa:ss"), None),  # the password may contain ':'
    (basic(b"user:wrong"), 401),
    (basic(b"other:pa:ss"), 401),
    (None, 401),
    ("basic " + base64.b64encode(b"user:pa:ss").decode(), 403),  # the scheme is case-sensitive
    ("Bearer abc", 403),
    (basic(b"no colon"), 403),
    ("Basic dXNlcjpwYTpzcw", 403),  # bad padding: websockify drops the connection instead
    ("Basic !!!!", 403),
])
def test_basic_auth_answers_as_websockify(authorization: str | None, code: int | None) -> None:
    plugin = BasicHTTPAuth("user:pa:ss")
    message = headers(Authorization=authorization) if authorization else headers()
    assert code_of(plugin, message) == code


def test_basic_auth_asks_for_credentials_with_websockifys_realm() -> None:
    with pytest.raises(AuthenticationError) as info:
        BasicHTTPAuth("u:p").authenticate(headers(), "h", 1)
    assert info.value.headers == {"WWW-Authenticate": 'Basic realm="Websockify"'}
    assert str(info.value) == "401 None"  # logged as "handler exception: 401 None"


def test_basic_auth_credentials_are_iso_8859_1() -> None:
    plugin = BasicHTTPAuth("jos\u00e9:caf\u00e9")
    assert code_of(plugin, headers(Authorization=basic("jos\u00e9:caf\u00e9".encode("latin-1")))) \
        is None
    assert code_of(plugin, headers(Authorization=basic("jos\u00e9:caf\u00e9".encode()))) == 401


@pytest.mark.parametrize("source", [None, "", "no-colon"])
def test_basic_auth_without_a_usable_source_fails_at_startup(source: str | None) -> None:
    with pytest.raises(ValueError, match="user:password"):
        BasicHTTPAuth(source)


class UsersFromSource(BasicHTTPAuth):
    """A subclass whose source is not user:password (websockify allows it, #18)."""

    def validate_creds(self, username: str, password: str) -> bool:
        return f"{username}={password}" in (self.src or "").split(",")


@pytest.mark.parametrize("source", [None, "", "no-colon"])
def test_a_subclass_overriding_validate_creds_accepts_any_source(source: str | None) -> None:
    plugin = UsersFromSource(source)
    assert code_of(plugin, headers(Authorization=basic(b"no:colon"))) == 401
    assert code_of(UsersFromSource("a=1,b=2"), headers(Authorization=basic(b"b:2"))) is None


class KeepsBuiltinCheck(BasicHTTPAuth):
    """A subclass that only adds a check: the built-in comparison still reads src."""


def test_a_subclass_keeping_the_builtin_comparison_still_needs_user_password() -> None:
    with pytest.raises(ValueError, match="user:password"):
        KeepsBuiltinCheck("no-colon")
    assert code_of(KeepsBuiltinCheck("u:p"), headers(Authorization=basic(b"u:p"))) is None


def test_the_loader_reports_a_missing_basic_auth_source_as_a_startup_error() -> None:
    from proxy.errors import StartupError

    with pytest.raises(StartupError, match="BasicHTTPAuth"):
        load_plugin("BasicHTTPAuth", "auth", None)


def test_basic_auth_compares_credentials_in_constant_time() -> None:
    """websockify compares with ``==`` (spec §13.15); ours hashes, then compare_digest."""
    assert "hmac.compare_digest(" in inspect.getsource(BasicHTTPAuth.validate_creds)


# -- ExpectOrigin -----------------------------------------------------------------------------


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://a.example", True),
    ("https://b.example", True),
    ("https://a.example", False),
    ("http://a.example.evil", False),
    ("https://x.wild.example", True),
    ("https://x.y.wild.example", True),
    ("https://wild.example", False),
    ("https://x.wild.example.evil", False),
    ("https://xwild.example", False),
    ("http://x.wild.example", False),
    (None, False),
])
def test_expect_origin_list_and_wildcards(origin: str | None, allowed: bool) -> None:
    plugin = ExpectOrigin("http://a.example  https://b.example\thttps://*.wild.example")
    message = headers(Origin=origin) if origin else headers()
    assert (code_of(plugin, message) is None) is allowed


def test_an_invalid_origin_is_logged_as_websockify_logs_it() -> None:
    plugin = ExpectOrigin("http://a.example https://b.example")
    with pytest.raises(InvalidOriginError) as info:
        plugin.authenticate(headers(), "h", 1)
    assert info.value.code == 403 and info.value.msg == "Invalid Origin"
    assert str(info.value) == ("403 Invalid Origin Header: Expected one of "
                               "['http://a.example', 'https://b.example'], got 'None'")


@pytest.mark.parametrize(("origin", "host", "allowed"), [
    ("https://app.example", "app.example", True),
    ("https://App.Example", "app.example", True),
    ("https://app.example:8443", "app.example:8443", True),
    ("https://app.example", "app.example:443", True),
    ("http://app.example:80", "app.example", True),
    ("https://app.example", "app.example:8443", False),
    ("https://evil.example", "app.example", False),
    ("https://app.example.evil.example", "app.example", False),
    ("null", "app.example", False),
    ("https://app.example", None, False),
])
def test_same_origin_accepts_an_origin_naming_the_host(origin: str, host: str | None,
                                                       allowed: bool) -> None:
    assert same_origin(origin, host) is allowed
    fields = {"Origin": origin, **({"Host": host} if host else {})}
    assert (code_of(ExpectOrigin("same-origin"), headers(**fields)) is None) is allowed


def test_same_origin_combines_with_a_list() -> None:
    plugin = ExpectOrigin("same-origin https://portal.example")
    assert code_of(plugin, headers(Origin="https://portal.example", Host="vnc.example")) is None
    assert code_of(plugin, headers(Origin="https://vnc.example", Host="vnc.example")) is None
    assert code_of(plugin, headers(Origin="https://other.example", Host="vnc.example")) == 403


# -- ClientCertCNAuth ---------------------------------------------------------------------------


@pytest.mark.parametrize("spoof", ["SSL_CLIENT_S_DN_CN", "ssl_client_s_dn_cn",
                                   "Ssl_Client_S_Dn_Cn", "ssl_CLIENT_s_DN_cn"])
def test_client_cert_cn_cannot_be_claimed_by_a_header(spoof: str) -> None:
    """The handler strips client SSL_* headers in any case before the plugin runs (§9.1)."""
    plugin = ClientCertCNAuth("alice bob")
    message = headers()
    message[spoof] = "alice"
    resolve.strip_client_cert_headers(message, None)
    with pytest.raises(HandshakeError) as info:
        resolve.authenticate(plugin, message, Target("h", 1))
    assert info.value.status == 403
    message[spoof] = "alice"
    resolve.strip_client_cert_headers(message, "bob")  # the verified certificate says bob
    resolve.authenticate(plugin, message, Target("h", 1))
    assert message.get_all("SSL_CLIENT_S_DN_CN") == ["bob"]


def test_client_cert_cn_auth_denies_unlisted_and_missing_names() -> None:
    plugin = ClientCertCNAuth("alice")
    assert code_of(plugin, headers(SSL_CLIENT_S_DN_CN="alice")) is None
    assert code_of(plugin, headers(SSL_CLIENT_S_DN_CN="carol")) == 403
    assert code_of(plugin, headers()) == 403
    assert code_of(ClientCertCNAuth(None), headers(SSL_CLIENT_S_DN_CN="alice")) == 403


def test_websockify_names_load_our_builtins() -> None:
    plugin = load_plugin("websockify.auth_plugins.ExpectOrigin", "auth", "https://a.example")
    assert isinstance(plugin, ExpectOrigin)
    assert isinstance(load_plugin("ClientCertCNAuth", "auth", "alice"), ClientCertCNAuth)


# -- thread safety --------------------------------------------------------------------------------


def test_one_plugin_instance_serves_many_threads_at_once() -> None:
    """Plugins are shared by every connection thread (websockify had one per process)."""
    plugins = [
        (BasicHTTPAuth("user:secret"), headers(Authorization=basic(b"user:secret")),
         headers(Authorization=basic(b"user:guess"))),
        (ExpectOrigin("https://*.example same-origin"),
         headers(Origin="https://a.example", Host="x"), headers(Origin="https://a.evil", Host="x")),
        (ClientCertCNAuth("alice"), headers(SSL_CLIENT_S_DN_CN="alice"),
         headers(SSL_CLIENT_S_DN_CN="mallory")),
    ]
    start = threading.Barrier(16)
    wrong: list[str] = []

    def hammer(n: int) -> None:
        start.wait(TIMEOUT)
        for i in range(300):
            plugin, good, bad = plugins[(n + i) % len(plugins)]
            if code_of(plugin, good) is not None or code_of(plugin, bad) is None:
                wrong.append(type(plugin).__name__)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 4)
    assert not any(thread.is_alive() for thread in threads)
    assert wrong == []
