"""Static files and built-in pages (``proxy.serve.web``): pure decisions, then over a socket.

The in-process tests run ``ProxyServer`` on port 0 in a thread with ``--web`` pointing at
a tree built in ``tmp_path`` (STYLE.md §8.5), and talk raw HTTP/1.1 to it.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import socket
from pathlib import Path

import pytest

from proxy.serve import web
from proxy.process.cli import parse_cli
from proxy.serve.server import ProxyServer
from proxy.settings import Settings
from tests.conftest import TIMEOUT
from tests.support.inprocess import running

SECRET = b"outside the web root"
MTIME = 1_700_000_000  # a fixed Last-Modified for the tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp_path/www`` (the root) beside ``tmp_path/outside`` (must never be served)."""
    root = tmp_path / "www"
    outside = tmp_path / "outside"
    for folder in (root / "sub", root / "listing" / "nested", root / "websockify", outside):
        folder.mkdir(parents=True)
    files = {
        "hello.txt": b"hello\n",
        "app.js": b"export const x = 1;\n",
        "mod.mjs": b"export default 2;\n",
        "lib.wasm": b"\x00asm\x01\x00\x00\x00",
        "page.html": b"<p>page</p>",
        "sub/index.html": b"<p>sub index</p>",
        "listing/a.txt": b"a",
        "websockify/index.html": b"<p>a file of --web</p>",
        "%2e%2e": b"a file literally named %2e%2e",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (outside / "secret.txt").write_bytes(SECRET)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "listing" / "link.txt").symlink_to(root / "hello.txt")
    for path in root.rglob("*"):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    return root


# -- pure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/hello.txt", "hello.txt"),
        ("/sub/", "sub"),
        ("/", ""),
        ("/a/../hello.txt", "hello.txt"),
        ("/../../etc/passwd", "etc/passwd"),  # normalised away, as http.server does
        ("/%2e%2e/%2e%2e/etc/passwd", "etc/passwd"),
        ("/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "etc/passwd"),
        ("/%252e%252e", "%2e%2e"),  # decoded once: a literal name
        ("//etc/passwd", "etc/passwd"),
        ("/./hello.txt", "hello.txt"),
    ],
)
def test_request_paths_map_inside_the_root(path: str, expected: str) -> None:
    """Every request path lands under the root, with `..` normalised away."""
    root = "/srv/www"
    assert web.translate_path(root, path) == os.path.join(root, expected).rstrip("/")


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",  # a relative request target
        "/..%5c..%5cetc%5cpasswd",
        "/..\\..\\etc\\passwd",
        "/hello.txt%00.html",
        "/%00",
        "/%ff%fe",  # not UTF-8
    ],
)
def test_request_paths_that_name_nothing(path: str) -> None:
    """Backslashes, NUL, undecodable bytes and relative targets name no file."""
    assert web.translate_path("/srv/www", path) is None


def test_the_diagnostics_paths_come_before_web_files() -> None:
    """Built-in paths win over --web; anything else under the prefix is 404."""
    settings = Settings(web="/srv/www", diagnostics_path="/websockify/")
    assert web.plan(settings, "/websockify/") == web.Builtin("diagnostics.html")
    assert web.plan(settings, "/websockify/?connect=1") == web.Builtin("diagnostics.html")
    assert web.plan(settings, "/websockify/websockify.js") == web.Builtin("websockify.js")
    assert web.plan(settings, "/websockify/config.json") == web.Builtin(None)
    assert web.plan(settings, "/websockify/other.js") == web.NotFound()
    assert web.plan(settings, "/websockify?x=1") == web.Redirect("/websockify/?x=1")
    assert web.plan(settings, "/vnc.html") == web.LocalPath("/srv/www/vnc.html", False)
    assert web.plan(settings, "/app/") == web.LocalPath("/srv/www/app", True)


def test_without_web_only_the_diagnostics_paths_are_served() -> None:
    settings = Settings(diagnostics_path="/diag/")
    assert web.enabled(settings)
    assert web.plan(settings, "/diag/") == web.Builtin("diagnostics.html")
    assert web.plan(settings, "/vnc.html") == web.NotServed()
    assert not web.enabled(Settings())
    assert web.plan(Settings(), "/") == web.NotServed()
    assert web.plan(Settings(web="/srv"), "/websockify/") == web.LocalPath("/srv/websockify", True)


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("a.js", "text/javascript"),
        ("a.mjs", "text/javascript"),
        ("a.wasm", "application/wasm"),
        ("a.html", "text/html"),
        ("A.HTML", "text/html"),
        ("a.css", "text/css"),
        ("a.json", "application/json"),
        ("a.png", "image/png"),
        ("a.unknown-extension", "application/octet-stream"),
    ],
)
def test_content_types(name: str, ctype: str) -> None:
    assert web.content_type(name) == ctype


def test_if_modified_since_follows_http_server() -> None:
    when = email.utils.formatdate(MTIME, usegmt=True)
    earlier = email.utils.formatdate(MTIME - 60, usegmt=True)
    assert web.not_modified(when, None, MTIME + 0.5)  # sub-second part ignored
    assert not web.not_modified(earlier, None, MTIME)
    assert not web.not_modified(when, '"etag"', MTIME)  # If-None-Match wins
    assert not web.not_modified("not a date", None, MTIME)
    assert not web.not_modified(None, None, MTIME)


def test_the_page_is_told_the_target_or_the_token_plugin() -> None:
    plain = web.diagnostics_config(Settings(target_host="10.0.0.5", target_port=5901))
    assert plain["target"] == "10.0.0.5:5901" and plain["tokenPlugin"] is None
    tokens = web.diagnostics_config(Settings(token_plugin="TokenFile", token_from="path"))
    assert tokens["target"] is None
    assert (tokens["tokenPlugin"], tokens["tokenFrom"]) == ("TokenFile", "path")


def test_the_static_files_are_package_data() -> None:
    for name in set(web.BUILTIN_FILES.values()):
        data = (Path(web.__file__).parent / "static" / name).read_bytes()
        assert data, name


# -- over a socket --------------------------------------------------------------------------


class Response:
    def __init__(self, status: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Client:
    """Raw HTTP/1.1 on one connection: several requests, each answer read exactly."""

    def __init__(self, server: ProxyServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        self.buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(self, target: str, method: str = "GET", headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> Response:
        lines = [f"{method} {target} HTTP/1.1", "Host: x"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(raw if raw is not None else ("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._until(b"\r\n\r\n")
        status, *rest = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in rest if line)
        size = int(fields.get("Content-Length", "0"))
        if method == "HEAD" or status.split()[1] in ("301", "304"):
            size = 0 if method == "HEAD" or status.split()[1] == "304" else size
        body = self._exactly(size)
        return Response(status, fields, body)

    def closed(self) -> bool:
        """The server closed the connection (EOF with nothing more)."""
        return self.buffer == b"" and self.sock.recv(1) == b""

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed; got {self.buffer!r}"
            self.buffer += chunk
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed in the body"
            self.buffer += chunk
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return body


def test_files_are_served_with_type_length_and_date_on_one_kept_alive_connection(
        tree: Path) -> None:
    """GET, HEAD and GET again on one connection, each answered in full."""
    with running(web=str(tree)) as server, Client(server) as client:
        got = client.request("/app.js")
        assert got.status == "HTTP/1.1 200 OK"
        assert got.headers["Content-type"] == "text/javascript"
        assert got.headers["Content-Length"] == str(len(got.body)) == "20"
        assert got.headers["Last-Modified"] == email.utils.formatdate(MTIME, usegmt=True)
        assert got.headers["Server"].startswith("WebSockify Python/")
        assert got.body == b"export const x = 1;\n"
        head = client.request("/lib.wasm", method="HEAD")
        assert head.status == "HTTP/1.1 200 OK"
        assert head.headers["Content-type"] == "application/wasm"
        assert head.headers["Content-Length"] == "8" and head.body == b""
        again = client.request("/mod.mjs?v=1")
        assert again.headers["Content-type"] == "text/javascript"
        assert again.body == b"export default 2;\n"


def test_directories_redirect_then_serve_their_index(tree: Path) -> None:
    with running(web=str(tree)) as server, Client(server) as client:
        moved = client.request("/sub?a=1")
        assert moved.status == "HTTP/1.1 301 Moved Permanently"
        assert moved.headers["Location"] == "/sub/?a=1"
        assert moved.headers["Content-Length"] == "0"
        index = client.request("/sub/")
        assert (index.status, index.body) == ("HTTP/1.1 200 OK", b"<p>sub index</p>")
        assert index.headers["Content-type"] == "text/html"


def test_listings_are_html_and_mark_directories_and_links(tree: Path) -> None:
    with running(web=str(tree)) as server, Client(server) as client:
        got = client.request("/listing/")
        assert got.status == "HTTP/1.1 200 OK"
        assert got.headers["Content-type"] == "text/html; charset=utf-8"
        text = got.body.decode()
        assert "<title>Directory listing for /listing/</title>" in text
        assert '<a href="a.txt">a.txt</a>' in text
        assert '<a href="nested/">nested/</a>' in text
        assert '<a href="link.txt">link.txt@</a>' in text


def test_file_only_refuses_listings_with_not_found_but_serves_index_files(tree: Path) -> None:
    """--file-only: a listing is 404 "Not Found", a missing file 404 "File not found"."""
    with running(web=str(tree), file_only=True) as server:
        with Client(server) as client:
            refused = client.request("/listing/")
            assert refused.status == "HTTP/1.1 404 Not Found"
            assert b"Directory listing" not in refused.body
            assert client.closed()  # errors close the connection, as http.server does
        with Client(server) as client:
            assert client.request("/sub/").body == b"<p>sub index</p>"
            missing = client.request("/nothing.txt")
            assert missing.status == "HTTP/1.1 404 File not found"


@pytest.mark.parametrize(
    "target",
    [
        "/../outside/secret.txt",
        "/../../../../../../../etc/passwd",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E%2Foutside%2Fsecret.txt",
        "/%252e%252e/outside/secret.txt",
        "/..%5coutside%5csecret.txt",
        "/..\\outside\\secret.txt",
        "/secret.txt%00",
        "/%c0%ae%c0%ae/outside/secret.txt",  # overlong UTF-8 dots
    ],
)
def test_traversal_attempts_get_404_and_never_the_file(tree: Path, target: str) -> None:
    with running(web=str(tree)) as server, Client(server) as client:
        got = client.request(target)
        assert got.status == "HTTP/1.1 404 File not found"
        assert SECRET not in got.body


def test_a_double_encoded_name_is_a_literal_file_name(tree: Path) -> None:
    with running(web=str(tree)) as server, Client(server) as client:
        assert client.request("/%252e%252e").body == b"a file literally named %2e%2e"


def test_symlinks_resolving_inside_the_root_are_followed(tree: Path) -> None:
    """Debian's noVNC has one (``vnc_auto.html -> vnc.html``)."""
    with running(web=str(tree)) as server, Client(server) as client:
        got = client.request("/listing/link.txt")
        assert (got.status, got.body) == ("HTTP/1.1 200 OK", b"hello\n")


@pytest.mark.parametrize("path", ["/linked/secret.txt", "/linked/", "/linked", "/secret.txt",
                                  "/out/", "/out/index.html"])
def test_symlinks_leading_out_of_the_root_are_404(tree: Path, path: str) -> None:
    """#15 Reliability 2: websockify follows them (a link to / served /etc/shadow)."""
    (tree / "secret.txt").symlink_to(tree.parent / "outside" / "secret.txt")
    (tree / "out").mkdir()
    (tree / "out" / "index.html").symlink_to(tree.parent / "outside" / "secret.txt")
    with running(web=str(tree)) as server, Client(server) as client:
        got = client.request(path)
        assert got.status == "HTTP/1.1 404 File not found"
        assert SECRET not in got.body and b"secret.txt" not in got.body


def test_web_follow_symlinks_serves_them_as_websockify_does(tree: Path) -> None:
    with running(web=str(tree), web_follow_symlinks=True) as server, Client(server) as client:
        assert client.request("/linked/secret.txt").body == SECRET
        assert b"secret.txt" in client.request("/linked/").body  # the listing


def test_a_root_that_is_itself_a_symlink_serves_its_files(tree: Path) -> None:
    """The root is resolved too: ``--web /srv/www`` with ``/srv/www -> /data/www`` works."""
    alias = tree.parent / "alias"
    alias.symlink_to(tree, target_is_directory=True)
    with running(web=str(alias)) as server, Client(server) as client:
        assert client.request("/hello.txt").body == b"hello\n"
        assert client.request("/listing/link.txt").body == b"hello\n"
        assert client.request("/linked/secret.txt").status == "HTTP/1.1 404 File not found"


def test_if_modified_since_gets_304_and_if_none_match_disables_it(tree: Path) -> None:
    date = email.utils.formatdate(MTIME, usegmt=True)
    with running(web=str(tree)) as server, Client(server) as client:
        cached = client.request("/hello.txt", headers={"If-Modified-Since": date})
        assert cached.status == "HTTP/1.1 304 Not Modified"
        fresh = client.request("/hello.txt", headers={"If-Modified-Since": date,
                                                      "If-None-Match": '"x"'})
        assert (fresh.status, fresh.body) == ("HTTP/1.1 200 OK", b"hello\n")


def test_a_file_asked_for_as_a_directory_is_404(tree: Path) -> None:
    with running(web=str(tree)) as server, Client(server) as client:
        assert client.request("/hello.txt/").status == "HTTP/1.1 404 File not found"


def test_head_of_a_missing_file_has_no_body(tree: Path) -> None:
    with running(web=str(tree)) as server, Client(server) as client:
        got = client.request("/missing", method="HEAD")
        assert got.status == "HTTP/1.1 404 File not found"
        assert client.closed()


def test_the_diagnostics_page_takes_precedence_over_a_web_file(tree: Path) -> None:
    with running(web=str(tree), diagnostics_path="/websockify/") as server, \
            Client(server) as client:
        page = client.request("/websockify/")
        assert page.status == "HTTP/1.1 200 OK"
        assert b"websockify diagnostics" in page.body
        assert page.headers["Cache-Control"] == "no-cache"
        module = client.request("/websockify/websockify.js")
        assert module.headers["Content-type"] == "text/javascript"
        assert b"export class WebsockifyClient" in module.body
        config = json.loads(client.request("/websockify/config.json").body)
        assert config["target"] == "127.0.0.1:9"
        assert client.request("/page.html").body == b"<p>page</p>"
    with running(web=str(tree)) as server, Client(server) as client:
        assert client.request("/websockify/").body == b"<p>a file of --web</p>"


def test_diagnostics_alone_leaves_other_plain_requests_at_405() -> None:
    with running(diagnostics_path="/diag/") as server:
        with Client(server) as client:
            assert client.request("/diag").headers["Location"] == "/diag/"
            assert client.request("/diag/", method="HEAD").headers["Content-type"] == "text/html"
            assert client.request("/diag/nope").status == "HTTP/1.1 404 File not found"
        with Client(server) as client:
            assert client.request("/").status == "HTTP/1.1 405 Method Not Allowed"


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_web_auth_runs_the_auth_plugin_before_files_and_pages(tree: Path) -> None:
    """--web-auth with BasicHTTPAuth: 401 and the challenge, then the file with credentials."""
    with running(web=str(tree), web_auth=True, diagnostics_path="/websockify/",
                 auth_plugin="BasicHTTPAuth", auth_source="user:pw") as server:
        for target in ("/hello.txt", "/websockify/"):
            with Client(server) as client:
                denied = client.request(target)
                assert denied.status.startswith("HTTP/1.1 401 ")
                assert denied.headers["WWW-Authenticate"] == 'Basic realm="Websockify"'
            with Client(server) as client:
                assert client.request(target, headers=_basic("user:wrong")).status.startswith(
                    "HTTP/1.1 401 ")
            with Client(server) as client:
                assert client.request(target, headers=_basic("user:pw")).status == \
                    "HTTP/1.1 200 OK"


def test_without_web_auth_files_need_no_credentials(tree: Path) -> None:
    with running(web=str(tree), auth_plugin="BasicHTTPAuth", auth_source="user:pw") as server, \
            Client(server) as client:
        assert client.request("/hello.txt").body == b"hello\n"


# -- the command line -----------------------------------------------------------------------


def test_web_dir_is_made_absolute_without_changing_directory(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)
    settings = parse_cli(["--web", "www", "--file-only", "1", "h:2"])
    assert (settings.web, settings.file_only) == (str(tree), True)
    assert os.getcwd() == str(tree.parent)


def test_a_missing_web_dir_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_cli(["--web", str(tmp_path / "nope"), "1", "h:2"])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith(
        f"websockify: error: --web: no such directory: {tmp_path / 'nope'}\n")


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        ([], None),
        (["--diagnostics"], "/websockify/"),
        (["--diagnostics", "--diagnostics-path", "/diag"], "/diag/"),
        (["--diagnostics", "--diagnostics-path=/a/b/"], "/a/b/"),
    ],
)
def test_diagnostics_options(argv: list[str], path: str | None) -> None:
    assert parse_cli([*argv, "1", "h:2"]).diagnostics_path == path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--diagnostics-path", "/x/"], "You must use --diagnostics to use --diagnostics-path"),
        (["--diagnostics", "--diagnostics-path", "x/"], "--diagnostics-path must start with /"),
        (["--web-auth", "--auth-plugin", "X"], "You must use --web to use --web-auth"),
    ],
)
def test_diagnostics_usage_errors(argv: list[str], message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_cli([*argv, "1", "h:2"])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith(f"websockify: error: {message}\n")


def test_web_auth_also_guards_the_diagnostics_page_alone() -> None:
    settings = parse_cli(["--diagnostics", "--web-auth", "--auth-plugin", "BasicHTTPAuth",
                          "--auth-source", "u:p", "1", "h:2"])
    assert settings.web_auth and settings.web is None
