"""proxy.access.plugins and .resolve: websockify's plugin interfaces, without sockets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from proxy.access import auth, resolve, tokens
from proxy.errors import AuthError, HandshakeError, StartupError, TokenError
from proxy.access.plugins import load_plugin
from proxy.settings import Settings, Target
from tests.support.headers import headers, resolve_target


class Table:
    """A token plugin answering from a dict."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def lookup(self, token: str) -> object:
        self.asked.append(token)
        return self.answers.get(token)


def test_bare_and_websockify_names_load_our_builtins() -> None:
    assert type(load_plugin("BasePlugin", "token", "src")) is tokens.BasePlugin
    assert type(load_plugin("BasePlugin", "auth", None)) is auth.BasePlugin
    plugin = load_plugin("websockify.token_plugins.BasePlugin", "token", "x")
    assert type(plugin) is tokens.BasePlugin and plugin.source == "x"
    assert type(load_plugin("websockify.auth_plugins.BasePlugin", "auth", None)) is auth.BasePlugin


def test_a_websockify_style_user_plugin_loads_by_dotted_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site_plugins.py").write_text(textwrap.dedent("""
        from websockify.auth_plugins import AuthenticationError, BasePlugin
        from websockify.token_plugins import BasePlugin as TokenBase

        class Deny(BasePlugin):
            def authenticate(self, headers, target_host, target_port):
                raise AuthenticationError(response_code=401, response_msg="nope")

        class Fixed(TokenBase):
            def lookup(self, token):
                return ["unix_socket", self.source + "/" + token]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    deny = load_plugin("site_plugins.Deny", "auth", None)
    with pytest.raises(AuthError) as info:  # counted as "auth" in the metrics (#17 §2)
        resolve.authenticate(deny, headers(), Target("h", 1))
    assert (info.value.status, info.value.reason) == (401, "nope")
    assert info.value.log_line == "handler exception: 401 nope"
    fixed = load_plugin("site_plugins.Fixed", "token", "/run")
    target = resolve_target(Settings(token_plugin="x"), fixed, "/?token=vnc", headers())
    assert target == Target(unix_socket="/run/vnc")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Nonexistent", "cannot load token plugin Nonexistent: module 'proxy.tokens' has no "
                        "class 'Nonexistent'"),
        ("no_such_module_xyz.Bar", "cannot load token plugin no_such_module_xyz.Bar: No module "
                                   "named 'no_such_module_xyz'"),
    ],
)
def test_a_plugin_that_cannot_be_found_is_a_startup_error(name: str, message: str) -> None:
    with pytest.raises(StartupError) as info:
        load_plugin(name, "token", None)
    assert str(info.value) == message
    assert info.value.status == 1


@pytest.mark.parametrize(
    ("module", "source", "message"),
    [
        ("raising_plugin", "raise RuntimeError('no config')\n", "RuntimeError: no config"),
        ("syntax_plugin", "def f(:\n", "SyntaxError: invalid syntax (syntax_plugin.py, line 1)"),
    ],
)
def test_a_plugin_module_that_fails_to_import_is_a_startup_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str,
        message: str) -> None:
    """#15 Reliability 2: anything but ImportError from the module was a traceback."""
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(StartupError) as info:
        load_plugin(f"{module}.P", "auth", None)
    assert str(info.value) == f"cannot load auth plugin {module}.P: {message}"


def test_a_plugin_constructor_failure_is_a_startup_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_plugin.py").write_text(
        "class P:\n    def __init__(self, src):\n        raise Exception('needs a directory')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(StartupError, match="token plugin broken_plugin.P failed to start: "
                                           "needs a directory"):
        load_plugin("broken_plugin.P", "token", None)


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/?token=a&token=b", "a"),  # the first occurrence wins
        ("/websockify?token=a+b", "a b"),
        ("/?token=tok1%0A", "tok1"),
        ("/?token=%2Fx%3F", "/x?"),
    ],
)
def test_tokens_are_read_from_the_query_as_websockify_does(path: str, token: str) -> None:
    table = Table({token: ("h", 5900)})
    found = resolve_target(Settings(token_plugin="x"), table, path, headers())
    assert found == Target("h", 5900)
    assert table.asked == [token]


@pytest.mark.parametrize("path", ["/", "/?token=", "/tok1", "/?other=1"])
def test_no_token_is_a_400_with_websockify_log_text(path: str) -> None:
    with pytest.raises(TokenError) as info:
        resolve_target(Settings(token_plugin="x"), Table({}), path, headers())
    assert (info.value.status, info.value.log_line) == (400, "Token not present")


def test_an_unknown_token_is_a_404_with_websockify_log_text() -> None:
    with pytest.raises(TokenError) as info:
        resolve_target(Settings(token_plugin="x"), Table({}), "/?token=nope", headers())
    assert (info.value.status, info.value.log_line) == (404, "Token 'nope' not found")


@pytest.mark.parametrize(("host", "token"), [("hosttok:16084", "hosttok"), ("hosttok", "hosttok")])
def test_host_token_reads_the_host_header(host: str, token: str) -> None:
    table = Table({token: ("h", "1")})
    settings = Settings(token_plugin="x", host_token=True)
    assert resolve_target(settings, table, "/", headers(f"Host: {host}")) == Target("h", 1)


@pytest.mark.parametrize(
    ("answer", "target"),
    [(("h", 1), Target("h", 1)), (("h", "2"), Target("h", 2)), ((b"h", b"3"), Target("h", 3)),
     (["unix_socket", "/s"], Target(unix_socket="/s"))],
)
def test_lookup_answers_in_every_documented_shape(answer: object, target: Target) -> None:
    found = resolve_target(Settings(token_plugin="x"), Table({"t": answer}), "/?token=t",
                           headers())
    assert found == target


@pytest.mark.parametrize("answer", [("h",), ("h", "p", "q"), "h:1", 42])
def test_a_nonsense_lookup_answer_is_a_500(answer: object) -> None:
    with pytest.raises(TokenError) as info:
        resolve_target(Settings(token_plugin="x"), Table({"t": answer}), "/?token=t",
                       headers())
    assert info.value.status == 500


@pytest.mark.parametrize(
    ("port", "shown"),
    [("remote_port", "'remote_port'"), ("no-such-service-xyz", "'no-such-service-xyz'"),
     (0, "0"), (70000, "70000"), ("70000", "'70000'"), (b"-1", "b'-1'"), ("", "''"),
     (None, "None"), (5900.0, "5900.0"), (True, "True"), ("59\u0660", "'59\u0660'")],
)
def test_a_port_that_cannot_be_used_is_a_502_naming_the_value(port: object, shown: str) -> None:
    """#18: not "500 Token plugin failed"; one log line with the value."""
    with pytest.raises(HandshakeError) as info:
        resolve_target(Settings(token_plugin="x"), Table({"vnc": ("h", port)}),
                       "/?token=vnc", headers())
    assert not isinstance(info.value, TokenError)
    assert (info.value.status, str(info.value)) == (502, "502 Bad Gateway")
    assert info.value.log_line == f"Token 'vnc': unusable port {shown}"


@pytest.mark.parametrize(("port", "number"), [("http", 80), ("https", 443), (b"ssh", 22)])
def test_a_service_name_port_is_resolved_as_websockify_s_resolver_does(
        port: object, number: int) -> None:
    target = resolve_target(Settings(token_plugin="x"), Table({"t": ("h", port)}),
                            "/?token=t", headers())
    assert (target, target.given_port) == (Target("h", number), port)


class Recorder:
    """An auth plugin that records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, object]] = []

    def authenticate(self, headers: object, target_host: object, target_port: object) -> None:
        self.calls.append((target_host, target_port))


@pytest.mark.parametrize(
    ("answer", "given"),
    [(("h", "5901"), ("h", "5901")), (("h", 5902), ("h", 5902)), (("h", b"5903"), ("h", b"5903")),
     (("h", "http"), ("h", "http")), (["unix_socket", "/run/vnc.sock"], (None, None))],
)
def test_auth_plugins_get_the_target_as_the_token_plugin_returned_it(
        answer: object, given: tuple[object, object]) -> None:
    """#18: websockify hands the plugin's values through; None/None for a Unix socket."""
    recorder = Recorder()
    target = resolve_target(Settings(token_plugin="x"), Table({"t": answer}),
                            "/?token=t", headers())
    resolve.authenticate(recorder, headers(), target)
    assert recorder.calls == [given]


def test_auth_plugins_get_the_configured_target_or_none() -> None:
    recorder = Recorder()
    resolve.authenticate(recorder, headers(), Settings(target_host="t", target_port=9).target)
    resolve.authenticate(recorder, headers(), Settings(unix_target="/s").target)
    resolve.authenticate(recorder, headers(), Settings(token_plugin="x").target)
    assert recorder.calls == [("t", 9), (None, None), (None, None)]


def test_without_a_token_plugin_the_configured_target_is_used() -> None:
    settings = Settings(target_host="t", target_port=9)
    assert resolve_target(settings, None, "/?token=x", headers()) == Target("t", 9)


def test_client_certificate_headers_are_stripped_in_every_letter_case() -> None:
    """websockify strips only SSL_CLIENT_S_DN_CN and lets ssl_client_s_dn_cn through (§9.2)."""
    h = headers("SSL_CLIENT_S_DN_CN: mallory", "ssl_client_s_dn_cn: alice",
                "Ssl_Client_S_Dn_Cn: bob", "ssl_other: 1", "X-Keep: yes")
    resolve.strip_client_cert_headers(h, None)
    assert h.get("SSL_CLIENT_S_DN_CN") is None and h.get("ssl_other") is None
    assert h.get("X-Keep") == "yes"
    resolve.strip_client_cert_headers(h, "carol")
    assert h.get_all("ssl_client_s_dn_cn") == ["carol"]


def test_an_error_with_websockify_attributes_is_recognised_whatever_its_class() -> None:
    class ForeignAuthError(Exception):
        def __init__(self) -> None:
            super().__init__("403 go away")
            self.code, self.headers, self.msg = 403, {"X-Why": "policy"}, "Forbidden"

    class Plugin:
        def authenticate(self, headers: object, host: object, port: object) -> None:
            raise ForeignAuthError()

    with pytest.raises(HandshakeError) as info:
        resolve.authenticate(Plugin(), headers(), Target("h", 1))
    assert (info.value.status, info.value.reason) == (403, "Forbidden")
    assert info.value.headers == (("X-Why", "policy"),)


def test_invalid_origin_error_keeps_websockify_texts() -> None:
    exc = auth.InvalidOriginError(["http://a.example"], None)
    assert (exc.code, exc.msg) == (403, "Invalid Origin")
    assert str(exc) == "403 Invalid Origin Header: Expected one of ['http://a.example'], got 'None'"
