"""Token plugins and token sources (spec §8) on real files, a real HTTP server, real JWTs,
a real redis-server and real Unix sockets; the PROXY header and --trusted-proxy parsing."""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from proxy.access import tokens
from proxy.errors import HandshakeError, StartupError, TokenError
from proxy.access.plugins import load_plugin
from proxy.settings import Settings, Target
from proxy.access.tokens import files as token_files
from proxy.access.tokens.redisstore import parse_redis_source, parse_redis_value
from tests.conftest import TIMEOUT
from tests.support.headers import headers, resolve_target
from tests.support.services import RedisServer


def syntax_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Syntax error")]


# -- token sources (--token-from) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_from", "path", "lines", "expected"),
    [
        ("query", "/?token=a+b&token=c", [], "a b"),
        ("query", "/?token=tok1%0A", [], "tok1"),
        ("query", "/tok1", [], None),
        ("path", "/websockify/tok%2F1?token=other", [], "tok/1"),
        ("path", "/websockify/", [], None),
        ("cookie:vnc", "/?token=other", ["Cookie: a=1; vnc=\"t%20k\"; vnc=second"], "t k"),
        ("cookie:vnc", "/", ["Cookie: a=1", "Cookie: vnc=two"], "two"),
        ("cookie:vnc", "/", ["Cookie: vncx=1"], None),
        ("header:X-Token", "/?token=other", ["x-token:  tok3 "], "tok3"),
        ("header:X-Token", "/", [], None),
    ],
)
def test_each_token_source_finds_the_token_where_it_is_told(
        token_from: str, path: str, lines: list[str], expected: str | None) -> None:
    """--token-from query|path|cookie:NAME|header:NAME each read only their own place."""
    assert tokens.extract_token(token_from, False, path, headers(*lines)) == expected


def test_host_token_takes_precedence_over_token_from() -> None:
    assert tokens.extract_token("path", True, "/p", headers("Host: hosttok:6080")) == "hosttok"


@pytest.mark.parametrize("value", ["cookie", "cookie:", "header: ", "query:x", "body", ""])
def test_a_malformed_token_source_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="invalid token source"):
        tokens.parse_token_from(value)


def test_missing_and_unknown_tokens_carry_websockify_log_lines() -> None:
    plugin = tokens.BasePlugin(None)
    settings = Settings(token_plugin="x", token_from="header:X-Token")
    with pytest.raises(TokenError) as info:
        resolve_target(settings, plugin, "/?token=a", headers())
    assert (info.value.status, info.value.log_line) == (400, "Token not present")
    with pytest.raises(TokenError) as info:
        resolve_target(settings, plugin, "/", headers("X-Token: t1"))
    assert (info.value.status, info.value.log_line) == (404, "Token 't1' not found")


# -- ReadOnlyTokenFile / TokenFile ---------------------------------------------------------------


def test_token_file_lines_follow_websockify_0_13_rules(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "tokens"
    source.write_text(
        "# comment\n"
        "\n"
        "  tok1: 127.0.0.1:5901  \n"
        "v6: ::1:5902\n"
        "br: [::1]:5903\n"
        "sock: unix_socket:/run/vnc:1.sock\n"
        "bad line without target\n"
        "dup: h:1\n"
        "dup:\th:2\n"
        "noport: host:\n")
    plugin = tokens.TokenFile(str(source))
    with caplog.at_level(logging.INFO):
        assert plugin.lookup("tok1") == ("127.0.0.1", "5901")
    assert plugin.lookup("v6") == ("::1", "5902")
    assert plugin.lookup("br") == ("::1", "5903")
    assert plugin.lookup("sock") == ("unix_socket", "/run/vnc:1.sock")
    assert plugin.lookup("dup") == ("h", "2")
    assert plugin.lookup("# comment") is None and plugin.lookup("noport") is None
    assert syntax_errors(caplog) == [f"Syntax error in {source} on line 7",
                                     f"Syntax error in {source} on line 10"]


def test_a_service_name_port_is_kept_for_the_resolver(tmp_path: Path) -> None:
    """#18: websockify hands ``host:http`` to the resolver; it was "not found" here."""
    source = tmp_path / "tokens"
    source.write_text("web: 10.0.0.1:http\nodd: 10.0.0.2:remote_port\n")
    plugin = tokens.TokenFile(str(source))
    assert plugin.lookup("web") == ("10.0.0.1", "http")
    assert plugin.lookup("odd") == ("10.0.0.2", "remote_port")  # answered 502 (resolve)


def test_token_redis_keeps_websockify_s_attribute_names() -> None:
    """#18: subclasses (and websockify's own tests) read them."""
    pytest.importorskip("redis")
    plugin = tokens.TokenRedis('10.0.0.9:6380:2:pw:"a:b"')
    try:
        assert (plugin._server, plugin._port, plugin._db, plugin._password,
                plugin._namespace) == ("10.0.0.9", 6380, 2, "pw", "a:b:")
        bare = tokens.TokenRedis("10.0.0.9")
        assert (bare._port, bare._db, bare._password, bare._namespace) == (6379, 0, None, "")
        bare.close()
    finally:
        plugin.close()


def test_a_syntax_error_is_logged_once_naming_the_real_file_and_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """websockify names --token-source and counts lines across files, on every lookup."""
    (tmp_path / "a.conf").write_text("a: h:1\n\nb: h:2\n")
    (tmp_path / "b.conf").write_text("# c\noops\n")
    plugin = tokens.ReadOnlyTokenFile(str(tmp_path))
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            assert plugin.lookup("b") == ("h", "2")
    assert syntax_errors(caplog) == [f"Syntax error in {tmp_path / 'b.conf'} on line 2"]


def test_edits_additions_and_removals_are_picked_up_without_a_restart(tmp_path: Path) -> None:
    (tmp_path / "one").write_text("a: h:1\n")
    plugin = tokens.ReadOnlyTokenFile(str(tmp_path))
    assert plugin.lookup("a") == ("h", "1") and plugin.lookup("b") is None
    (tmp_path / "one").write_text("a: host:10\n")
    assert plugin.lookup("a") == ("host", "10")
    (tmp_path / "two").write_text("b: h:2\n")
    assert plugin.lookup("b") == ("h", "2")
    (tmp_path / "one").unlink()
    assert plugin.lookup("a") is None and plugin.lookup("b") == ("h", "2")
    (tmp_path / "sub").mkdir()  # HEAD skips subdirectories; 0.13.0 crashed on them
    assert plugin.lookup("b") == ("h", "2")


def test_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    source = tmp_path / "tokens"
    source.write_text("a: h:1\n")
    old = time.time() - 10 * token_files.RACY_WINDOW
    os.utime(source, (old, old))
    plugin = tokens.TokenFile(str(source))
    assert plugin.lookup("a") == ("h", "1")
    # Same size, inode and mtime: only a re-read could see the new text.
    source.write_text("a: h:2\n")
    os.utime(source, (old, old))
    assert plugin.lookup("a") == ("h", "1")
    os.utime(source, None)
    assert plugin.lookup("a") == ("h", "2")


def test_a_missing_token_file_is_logged_once_and_finds_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plugin = tokens.TokenFile("relative-missing")
    with caplog.at_level(logging.INFO):
        assert plugin.lookup("a") is None
        assert plugin.lookup("a") is None
    errors = [r.getMessage() for r in caplog.records if "Error reading" in r.getMessage()]
    assert len(errors) == 1 and os.path.abspath("relative-missing") in errors[0]


@pytest.mark.parametrize(
    ("plugin", "source", "reason"),
    [
        ("TokenFile", "missing.conf", "[Errno 2] No such file or directory"),
        ("ReadOnlyTokenFile", "file/below-a-file", "[Errno 20] Not a directory"),
        ("UnixDomainSocketDirectory", "missing.d", "[Errno 2] No such file or directory"),
        ("JWTTokenApi", "missing.key", "[Errno 2] No such file or directory"),
    ],
)
def test_an_unreadable_token_source_is_one_warning_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, plugin: str, source: str,
        reason: str) -> None:
    """#16 Operations 2: the plugin starts (the file may appear later) and says why once."""
    if plugin == "JWTTokenApi":
        pytest.importorskip("jwcrypto.jwt")
    (tmp_path / "file").write_text("")
    path = tmp_path / source
    with caplog.at_level(logging.INFO):
        load_plugin(plugin, "token", str(path))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"Token source not readable at start: {path}: {reason}")]


def test_a_readable_token_source_logs_nothing_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "t.conf").write_text("a: h:1\n")
    with caplog.at_level(logging.DEBUG):
        load_plugin("TokenFile", "token", str(tmp_path / "t.conf"))
        load_plugin("TokenFile", "token", str(tmp_path))
    assert caplog.records == []


def test_a_hundred_threads_look_up_while_the_file_is_rewritten(tmp_path: Path) -> None:
    """The shared cache never answers None or a half-read table during reloads."""
    source = tmp_path / "tokens"
    table = "".join(f"t{i}: h{i}:{1000 + i}\n" for i in range(50))
    source.write_text(table)
    plugin = tokens.TokenFile(str(source))
    stop = threading.Event()
    failures: list[object] = []

    def rewrite() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            tmp = tmp_path / "tokens.new"
            tmp.write_text(table + f"# rewrite {n}\n" * (n % 3))
            tmp.replace(source)

    def look(i: int) -> None:
        for _ in range(20):
            answer = plugin.lookup(f"t{i % 50}")
            if answer != (f"h{i % 50}", str(1000 + i % 50)):
                failures.append(answer)

    writer = threading.Thread(target=rewrite)
    readers = [threading.Thread(target=look, args=(i,)) for i in range(100)]
    writer.start()
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join(4 * TIMEOUT)
    stop.set()
    writer.join(TIMEOUT)
    assert not any(t.is_alive() for t in readers + [writer])
    assert failures == []


# -- TokenFileName, UnixDomainSocketDirectory ----------------------------------------------------


def test_token_file_name_reads_the_file_the_token_names(tmp_path: Path) -> None:
    (tmp_path / "vnc1").write_text(" 10.0.0.1:5901\n")
    (tmp_path / "v6").write_text("::1:5900")
    (tmp_path / "sock").write_text("unix_socket:/run/a:b.sock")
    plugin = load_plugin("TokenFileName", "token", str(tmp_path))
    assert plugin.lookup("vnc1") == ("10.0.0.1", "5901")
    assert plugin.lookup("../x/vnc1") == ("10.0.0.1", "5901")  # the basename, as websockify
    assert plugin.lookup("v6") == ("::1", "5900")
    assert plugin.lookup("sock") == ("unix_socket", "/run/a:b.sock")
    assert plugin.lookup("..") is None and plugin.lookup("missing") is None
    with pytest.raises(StartupError, match="TokenFileName plugin requires a directory"):
        load_plugin("TokenFileName", "token", str(tmp_path / "vnc1"))


@contextmanager
def unix_listener(path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen()
        yield sock
    finally:
        sock.close()


def test_unix_socket_directory_refuses_every_way_out_of_its_directory(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """websockify accepts ``../other/x.sock`` (spec §8.7); a token must be a plain name."""
    inside, outside = tmp_path / "uds", tmp_path / "other"
    inside.mkdir()
    outside.mkdir()
    (inside / "file").write_text("not a socket")
    with unix_listener(inside / "vnc1"), unix_listener(outside / "x"):
        plugin = tokens.UnixDomainSocketDirectory(os.path.relpath(inside))
        assert plugin.lookup("vnc1") == ["unix_socket", str(inside / "vnc1")]
        assert resolve_target(Settings(token_plugin="u"), plugin, "/?token=vnc1",
                              headers()) == Target(unix_socket=str(inside / "vnc1"))
        with caplog.at_level(logging.INFO):
            for token in ["../other/x", "..", ".", "a/b", str(outside / "x"), "x\0y",
                          "../uds/vnc1"]:
                assert plugin.lookup(token) is None, token
        assert plugin.lookup("file") is None and plugin.lookup("missing") is None
    refused = [r for r in caplog.records if "not a plain name" in r.getMessage()]
    assert len(refused) == 7


# -- BaseTokenAPI / JSONTokenApi ---------------------------------------------------------------


class TokenAPI:
    """A real HTTP token service on 127.0.0.1:0 recording the request paths it saw."""

    def __init__(self, answers: dict[str, tuple[int, bytes]]) -> None:
        self.answers = answers
        self.paths: list[str] = []
        self.release = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.paths.append(self.path)
                if self.path.startswith("/hang/"):
                    api.release.wait(4 * TIMEOUT)
                    return
                status, body = api.answers.get(self.path, (404, b"no"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05})

    def __enter__(self) -> TokenAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT)


def test_json_token_api_url_encodes_the_token(tmp_path: Path) -> None:
    """websockify inserts the token raw; ``a/b?c&d e`` must arrive as one encoded segment."""
    answers = {"/t/a%2Fb%3Fc%26d%20e%2B": (200, b'{"host": "10.1.1.1", "port": 5901}'),
               "/t/plain": (200, b'{"host": "h", "port": "5902"}'),
               "/t/broken": (200, b'{"hostname": "h"}')}
    with TokenAPI(answers) as api:
        plugin = load_plugin("JSONTokenApi", "token", f"http://127.0.0.1:{api.port}/t/%s")
        assert plugin.lookup("a/b?c&d e+") == ("10.1.1.1", 5901)
        assert plugin.lookup("plain") == ("h", "5902")
        assert plugin.lookup("unknown") is None
        with pytest.raises(TokenError) as info:
            resolve_target(Settings(token_plugin="x"), plugin, "/?token=broken",
                           headers())
        assert info.value.status == 500
    assert api.paths == ["/t/a%2Fb%3Fc%26d%20e%2B", "/t/plain", "/t/unknown", "/t/broken"]


@pytest.mark.parametrize("query", ["..", ".", "%2E%2E", "%2e", ".%2E"])
def test_dot_segment_tokens_are_not_found_without_asking_the_api(query: str) -> None:
    """#15 Reliability 2: ``/api/..`` is ``/`` to a server that normalises paths."""
    answers = {path: (200, b'{"host": "10.9.9.9", "port": 22}')
               for path in ("/", "/api", "/api/", "/api/.", "/api/..")}
    with TokenAPI(answers) as api:
        plugin = tokens.JSONTokenApi(f"http://127.0.0.1:{api.port}/api/%s")
        with pytest.raises(TokenError) as info:
            resolve_target(Settings(token_plugin="x"), plugin, f"/?token={query}",
                           headers())
        assert info.value.status == 404
        assert plugin.lookup("...") is None  # three dots is an ordinary name: asked
    assert api.paths == ["/api/..."]


def test_base_token_api_answers_host_colon_port_and_errors_mean_not_found() -> None:
    answers = {"/v?t=ok": (200, b"127.0.0.1:15900\n"), "/v?t=gone": (410, b"")}
    with TokenAPI(answers) as api:
        plugin = tokens.BaseTokenAPI(f"http://127.0.0.1:{api.port}/v?t=%s")
        assert tokens.target_from_lookup(plugin.lookup("ok")) == Target("127.0.0.1", 15900)
        assert plugin.lookup("gone") is None


def test_a_hanging_token_api_times_out_as_504_and_a_dead_one_is_502() -> None:
    with TokenAPI({}) as api:
        plugin = tokens.JSONTokenApi(f"http://127.0.0.1:{api.port}/hang/%s")
        plugin.timeout = 0.3
        started = time.monotonic()
        with pytest.raises(HandshakeError) as info:
            resolve_target(Settings(token_plugin="x"), plugin, "/?token=a", headers())
        assert time.monotonic() - started < TIMEOUT
        assert info.value.status == 504
        assert info.value.log_line is not None and "timed out" in info.value.log_line
    dead = tokens.JSONTokenApi(f"http://127.0.0.1:{api.port}/%s")  # nobody listens now
    with pytest.raises(HandshakeError) as info:
        resolve_target(Settings(token_plugin="x"), dead, "/?token=a", headers())
    assert info.value.status == 502


def test_a_token_api_source_without_a_placeholder_is_a_startup_error() -> None:
    with pytest.raises(StartupError, match="URL with a %s"):
        load_plugin("JSONTokenApi", "token", "http://example/")


# -- JWTTokenApi ---------------------------------------------------------------------------------


@pytest.fixture
def jwk() -> Any:
    return pytest.importorskip("jwcrypto.jwk")


@pytest.fixture
def jwt() -> Any:
    return pytest.importorskip("jwcrypto.jwt")


def signed(key: Any, claims: dict[str, Any], alg: str) -> str:
    jwt = pytest.importorskip("jwcrypto.jwt")
    token = jwt.JWT(header={"alg": alg}, claims=claims)
    token.make_signed_token(key)
    return str(token.serialize())


@pytest.fixture
def secret_file(tmp_path: Path, jwk: Any) -> tuple[Path, Any]:
    key = jwk.JWK.generate(kty="oct", size=256)
    path = tmp_path / "secret.key"
    path.write_text(json.loads(key.export())["k"] + "\n")
    return path, key


def test_jwt_signed_with_a_shared_secret(
        secret_file: tuple[Path, Any], jwk: Any, caplog: pytest.LogCaptureFixture) -> None:
    path, key = secret_file
    plugin = load_plugin("JWTTokenApi", "token", str(path))
    now = int(time.time())
    valid = signed(key, {"host": "10.0.0.5", "port": 5905, "exp": now + 60}, "HS256")
    assert plugin.lookup(valid) == ("10.0.0.5", 5905)
    with caplog.at_level(logging.INFO):
        assert plugin.lookup(signed(key, {"host": "h", "port": 1, "exp": now - 5}, "HS256")) \
            is None
        assert plugin.lookup(signed(key, {"host": "h", "port": 1, "nbf": now + 60}, "HS256")) \
            is None
        other = jwk.JWK.generate(kty="oct", size=256)
        assert plugin.lookup(signed(other, {"host": "h", "port": 1}, "HS256")) is None
        assert plugin.lookup("not-a-jwt") is None
    messages = [r.getMessage() for r in caplog.records]
    assert "Token has expired!" in messages and "Token can not be used yet!" in messages
    assert sum(m.startswith("Failed to parse token: ") for m in messages) == 2


def test_jwt_with_pem_keys_signed_and_encrypted(tmp_path: Path, jwk: Any, jwt: Any) -> None:
    """RS256 verified with a public PEM; a JWE holding a JWS, decrypted with the private PEM."""
    key = jwk.JWK.generate(kty="RSA", size=2048)
    public, private = tmp_path / "public.pem", tmp_path / "private.pem"
    public.write_bytes(key.export_to_pem())
    private.write_bytes(key.export_to_pem(private_key=True, password=None))
    inner = signed(key, {"host": "10.0.0.6", "port": "5906"}, "RS256")
    assert tokens.JWTTokenApi(str(public)).lookup(inner) == ("10.0.0.6", "5906")
    outer = jwt.JWT(header={"alg": "RSA-OAEP", "enc": "A256GCM"}, claims=inner)
    outer.make_encrypted_token(key)
    assert tokens.JWTTokenApi(str(private)).lookup(outer.serialize()) == ("10.0.0.6", "5906")


def test_jwt_key_file_problems_are_logged_and_not_found(
        tmp_path: Path, jwk: Any, caplog: pytest.LogCaptureFixture) -> None:
    plugin = tokens.JWTTokenApi(str(tmp_path / "missing.key"))
    with caplog.at_level(logging.INFO):
        assert plugin.lookup("x.y.z") is None
    assert any(r.getMessage().startswith("Error loading key file: ") for r in caplog.records)


def test_a_missing_optional_dependency_is_a_startup_error_naming_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "jwcrypto" or m.startswith("jwcrypto.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "jwcrypto", None)  # makes "import jwcrypto" fail
    with pytest.raises(StartupError) as info:
        load_plugin("JWTTokenApi", "token", "key")
    # websockify-threaded is not on the package index: the hint names what pip can find.
    assert str(info.value).startswith("JWTTokenApi requires jwcrypto (the 'jwt' extra of "
                                      "websockify-threaded): pip install jwcrypto (")
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(StartupError) as info:
        load_plugin("TokenRedis", "token", "localhost")
    assert str(info.value) == ("TokenRedis requires redis (the 'redis' extra of "
                               "websockify-threaded): pip install redis (import of redis "
                               "halted; None in sys.modules)")


# -- TokenRedis ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("h", ("h", 6379, 0, None, "")),
        ("h:6380", ("h", 6380, 0, None, "")),
        ("h::2", ("h", 6379, 2, None, "")),
        ("h:::pw", ("h", 6379, 0, "pw", "")),
        ('h::::"ns1:ns2"', ("h", 6379, 0, None, "ns1:ns2:")),
        ("h:1:2:pw:ns", ("h", 1, 2, "pw", "ns:")),
    ],
)
def test_redis_source_syntax_is_websockify_s(source: str, expected: tuple[Any, ...]) -> None:
    assert parse_redis_source(source) == expected


@pytest.mark.parametrize("source", ["h:port", "h:1:db", "a:b:c:d:e:f", ""])
def test_a_bad_redis_source_is_a_startup_error_with_websockify_s_message(source: str) -> None:
    pytest.importorskip("redis")
    with pytest.raises(StartupError) as info:
        load_plugin("TokenRedis", "token", source)
    assert str(info.value) == (f"The provided --token-source='{source}' is not in the expected "
                               "format <host>[:<port>[:<db>[:<password>[:<namespace>]]]]")


@pytest.mark.parametrize(
    ("value", "expected", "log"),
    [
        ('  {"host": "h:1"} ', ["h", "1"], None),
        ("h:2\n", ["h", "2"], None),
        ("unix_socket:/run/x", ["unix_socket", "/run/x"], None),
        ('{"host": "h:1"', None, 'Unable to decode JSON token: {"host": "h:1"'),
        ('{"hostname": "h:1"}', None, 'Unable to find \'host\' key in JSON token: '
                                      '{"hostname": "h:1"}'),
        ("nonsense", None, "Unable to parse token: nonsense"),
    ],
)
def test_redis_values_in_both_formats(value: str, expected: list[str] | None, log: str | None,
                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert parse_redis_value(value) == expected
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ([log] if log else [])


def test_token_redis_against_a_real_redis_server(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis")
    with RedisServer(tmp_path / "redis") as server:
        client: Any = server.client()
        try:
            client.set("app:json", '{"host": "10.0.0.7:5907"}')
            client.set("app:plain", "10.0.0.8:5908")
            client.set("plain", "wrong-namespace:1")
            caplog.set_level(logging.INFO)
            plugin = load_plugin("TokenRedis", "token", f'127.0.0.1:{server.port}:::"app"')
            try:
                assert plugin.lookup("json") == ["10.0.0.7", "5907"]
                assert plugin.lookup("plain") == ["10.0.0.8", "5908"]
                assert plugin.lookup("missing") is None
                client.set("app:later", "10.0.0.9:5909")
                assert plugin.lookup("later") == ["10.0.0.9", "5909"]
            finally:
                plugin.close()
        finally:
            client.close()
    messages = [r.getMessage() for r in caplog.records]
    assert f"TokenRedis backend initialized (127.0.0.1:{server.port})" in messages
    assert "resolving token 'json'" in messages
    dead = load_plugin("TokenRedis", "token", f"127.0.0.1:{server.port}")  # stopped now
    try:
        with pytest.raises(HandshakeError) as info:
            resolve_target(Settings(token_plugin="x"), dead, "/?token=a", headers())
        assert info.value.status == 502
    finally:
        dead.close()


# -- --connect-before-upgrade in-process -----------------------------------------------------------


def test_connect_before_upgrade_answers_504_when_the_target_connect_times_out(
        tmp_path: Path) -> None:
    """A target whose accept queue is full drops our SYN: the connect times out -> 504."""
    from proxy.serve.server import ProxyServer

    target = socket.socket()
    fillers: list[socket.socket] = []
    try:
        target.bind(("127.0.0.1", 0))
        target.listen(0)
        port = target.getsockname()[1]
        for _ in range(4):  # fill the queue; later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        # Connected (writable) means queued: with backlog 0 the queue is full from then on.
        _, connected, _ = select.select([], fillers[:1], [], TIMEOUT)
        assert connected, "the first connection to the target was not queued"
        (tmp_path / "tokens").write_text(f"slow: 127.0.0.1:{port}\n")
        settings = Settings(listen_host="127.0.0.1", token_plugin="TokenFile",
                            token_source=str(tmp_path / "tokens"), connect_before_upgrade=True,
                            connect_timeout=0.5)
        server = ProxyServer(settings)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", server.server_address[1]),
                                          timeout=TIMEOUT) as sock:
                sock.sendall(b"GET /?token=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                answer = sock.recv(200)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 504 Failed to connect to downstream server\r\n")
    finally:
        for filler in fillers:
            filler.close()
        target.close()
