"""proxy.process.cli.parse_cli: websockify's positional forms and usage errors (spec §2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.process.cli import parse_cli
from proxy.settings import TextFrames

USAGE = (
    "Usage: \n"
    "    websockify [options] [source_addr:]source_port target_addr:target_port\n"
    "    websockify [options] --token-plugin=CLASS [source_addr:]source_port\n"
    "    websockify [options] --unix-target=FILE [source_addr:]source_port\n"
    "    websockify [options] [source_addr:]source_port -- WRAP_COMMAND_LINE\n"
)


@pytest.fixture(autouse=True)
def no_websockify_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """ConfigArgParse reads WEBSOCKIFY_* variables; keep the caller's out."""
    import os

    for name in list(os.environ):
        if name.startswith("WEBSOCKIFY_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "Too few arguments"),
        (["6080"], "Too few arguments"),
        (["x6080", "h:1"], "Error parsing listen port"),
        (["6080", "host"], "Error parsing target"),
        (["6080", "host:port"], "Error parsing target port"),
        # #16 Operations 2: websockify wraps these (99999 -> 34463, 70000 -> 4464).
        (["127.0.0.1:99999", "h:1"], "Error parsing listen port"),
        (["65536", "h:1"], "Error parsing listen port"),
        (["127.0.0.1:-1", "h:1"], "Error parsing listen port"),
        (["6080", "h:70000"], "Error parsing target port"),
        (["6080", "h:0"], "Error parsing target port"),
        (["6080", "h:-5900"], "Error parsing target port"),
        (["6080", "h:1", "extra"], "Too many arguments"),
        (["--bogus", "6080", "h:1"], "no such option: --bogus"),
        (["--bogus=1", "6080", "h:1"], "no such option: --bogus"),
    ],
)
def test_usage_errors_match_websockify_byte_for_byte(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_cli(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == f"{USAGE}\nwebsockify: error: {message}\n"
    assert captured.out == ""


@pytest.mark.parametrize(
    ("argv", "listen", "target"),
    [
        (["6080", "localhost:5900"], ("", 6080), ("localhost", 5900)),
        (["127.0.0.1:6080", "10.0.0.1:5900"], ("127.0.0.1", 6080), ("10.0.0.1", 5900)),
        (["[::1]:6080", "[::1]:5900"], ("::1", 6080), ("::1", 5900)),
        (["::1:6080", "::1:5900"], ("::1", 6080), ("::1", 5900)),
        (["6080", "-v", "h:1"], ("", 6080), ("h", 1)),
        (["0", "h:65535"], ("", 0), ("h", 65535)),  # the ends of the ranges (#16)
        (["65535", "h:1"], ("", 65535), ("h", 1)),
    ],
)
def test_positional_forms(argv: list[str], listen: tuple[str, int],
                          target: tuple[str, int]) -> None:
    settings = parse_cli(argv)
    assert (settings.listen_host, settings.listen_port) == listen
    assert (settings.target_host, settings.target_port) == target


def test_options_reach_the_settings() -> None:
    settings = parse_cli(["--text-frames=reject", "--heartbeat", "7", "--verb", "1", "h:2"])
    assert settings.text_frames is TextFrames.REJECT
    assert settings.heartbeat == 7.0
    assert settings.verbose is True


def test_defaults() -> None:
    settings = parse_cli(["1", "h:2"])
    assert settings.text_frames is TextFrames.ACCEPT
    assert settings.verbose is False
    assert settings.heartbeat == 0
    assert settings.max_message_size >= 64 * 1024 * 1024


def test_environment_variables_set_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSOCKIFY_TEXT_FRAMES", "reject")
    assert parse_cli(["1", "h:2"]).text_frames is TextFrames.REJECT
    assert parse_cli(["--text-frames", "accept", "1", "h:2"]).text_frames is TextFrames.ACCEPT


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--token-source", "x", "1", "h:2"], "You must use --token-plugin to use --token-source"),
        (["--host-token", "1", "h:2"], "You must use --token-plugin to use --host-token"),
        (["--auth-source", "x", "1", "h:2"], "You must use --auth-plugin to use --auth-source"),
        (["--web-auth", "1", "h:2"], "You must use --auth-plugin to use --web-auth"),
        (["--web-auth", "--auth-plugin", "X", "1", "h:2"], "You must use --web to use --web-auth"),
        (["--legacy-syslog", "1", "h:2"], "You must use --syslog to use --legacy-syslog"),
        (["--web-follow-symlinks", "1", "h:2"], "You must use --web to use --web-follow-symlinks"),
        (["--syslog", "host:notint", "1", "h:2"], "Error parsing syslog port"),
        (["--ssl-only", "1", "h:2"], "SSL only and self.pem not found"),
        (["--unix-listen", "s", "--unix-listen-mode", "9x"],
         "Error parsing listen unix socket mode"),
        (["--unix-listen", "s", "6080", "h:p"], "Error parsing target"),
        (["--ssl-version", "tlsv1_0", "1", "h:2"],
         "option --ssl-version: invalid choice: 'tlsv1_0' "
         "(choose from 'default', 'tlsv1_1', 'tlsv1_2', 'tlsv1_3')"),
        (["--wrap-mode", "x", "1", "h:2"],
         "option --wrap-mode: invalid choice: 'x' (choose from 'exit', 'ignore', 'respawn')"),
        (["--timeout", "abc", "1", "h:2"], "option --timeout: invalid integer value: 'abc'"),
        (["--idle-timeout=abc", "1", "h:2"], "option --idle-timeout: invalid integer value: 'abc'"),
        (["--heartbeat", "1.5", "1", "h:2"], "option --heartbeat: invalid integer value: '1.5'"),
        (["1", "h:2", "--timeout"], "--timeout option requires 1 argument"),
        (["--verbose=yes", "1", "h:2"], "--verbose option does not take a value"),
        (["--t", "1", "1", "h:2"], "ambiguous option: --t (--target-config, "
                                   "--target-proxy-protocol, --text-frames, --timeout, "
                                   "--token-from, --token-plugin, --token-source, --traffic, "
                                   "--traffic-dump, --traffic-dump-bytes, --trusted-proxy?)"),
        (["6080", "--"], "Too few arguments"),
        (["--token-plugin", "T", "6080", "extra"], "Too many arguments"),
    ],
)
def test_option_checks_match_websockify(argv: list[str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Spec §2.4, in websockify's order and words."""
    with pytest.raises(SystemExit) as info:
        parse_cli(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err == f"{USAGE}\nwebsockify: error: {message}\n"


def test_abbreviations_websockify_accepted_keep_their_meaning() -> None:
    """`--tr` was --traffic in 0.13.0, even though --text-frames shares the prefix now."""
    from proxy.process.cli import parse_args

    _settings, opts = parse_args(["--tr", "--verb", "--heart", "5", "--run", "1", "h:2"])
    assert opts.traffic and opts.verbose and opts.heartbeat == 5 and opts.run_once
    _settings, opts = parse_args(["--idle", "3", "--prefer", "--libs", "1", "h:2"])
    assert opts.idle_timeout == 3 and opts.prefer_ipv6 and opts.libserver


def test_values_that_begin_with_a_dash_are_accepted_as_optparse_did() -> None:
    from proxy.process.cli import parse_args

    _settings, opts = parse_args(["1", "h:2", "--key-password", "-secret", "--cert", "--x"])
    assert opts.key_password == "-secret"
    assert opts.cert == "--x"


def test_integers_are_read_as_optparse_reads_them() -> None:
    assert parse_cli(["--heartbeat", "010", "1", "h:2"]).heartbeat == 8
    assert parse_cli(["--heartbeat", "0x10", "1", "h:2"]).heartbeat == 16
    assert parse_cli(["--timeout=12", "1", "h:2"]).timeout == 12


@pytest.mark.parametrize(
    ("argv", "wrap"),
    [
        (["6080", "--", "vncserver", "-geometry", "800x600", ":1"],
         ("vncserver", "-geometry", "800x600", ":1")),
        (["6080", "--", "cmd", "--", "x"], ("cmd", "--", "x")),
        (["-v", "6080", "--", "cmd", "-h"], ("cmd", "-h")),
    ],
)
def test_wrap_commands_are_split_at_the_first_double_dash(argv: list[str],
                                                          wrap: tuple[str, ...]) -> None:
    settings = parse_cli(argv)
    assert settings.wrap_cmd == wrap
    assert settings.listen_port == 6080


def test_unix_listen_and_inetd_take_no_listen_positional(tmp_path: object) -> None:
    settings = parse_cli(["--unix-listen", "a.sock", "--unix-listen-mode", "660", "h:2"])
    assert settings.unix_listen is not None and settings.unix_listen.endswith("/a.sock")
    assert settings.unix_listen_mode == 0o660
    assert (settings.target_host, settings.target_port) == ("h", 2)
    settings = parse_cli(["--inetd", "--unix-target", "t.sock"])
    assert settings.inetd and settings.unix_target is not None
    assert settings.listen_display == "inetd"


def test_a_config_file_and_the_environment_set_options_with_cli_precedence(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import pathlib

    config = pathlib.Path(str(tmp_path)) / "ws.conf"
    config.write_text("heartbeat = 3\nidle-timeout = 9\nverbose = true\n")
    settings = parse_cli(["--config", str(config), "1", "h:2"])
    assert (settings.heartbeat, settings.idle_timeout, settings.verbose) == (3, 9, True)
    monkeypatch.setenv("WEBSOCKIFY_HEARTBEAT", "4")
    settings = parse_cli(["--config", str(config), "1", "h:2"])
    assert settings.heartbeat == 4  # env beats the file
    settings = parse_cli(["--config", str(config), "--heartbeat", "5", "1", "h:2"])
    assert settings.heartbeat == 5  # the command line beats both


def test_an_unknown_config_file_key_is_a_usage_error(tmp_path: object,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import pathlib

    config = pathlib.Path(str(tmp_path)) / "ws.conf"
    config.write_text("no-such-thing = 1\n")
    with pytest.raises(SystemExit) as info:
        parse_cli(["--config", str(config), "1", "h:2"])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith("websockify: error: no such option: --no-such-thing\n")


@pytest.mark.parametrize("form", [["--config", "{}"], ["-c", "{}"], ["--config={}"]])
def test_a_config_file_that_is_not_utf8_is_a_usage_error(
        tmp_path: object, capsys: pytest.CaptureFixture[str], form: list[str]) -> None:
    """#15 Reliability 2: a traceback (UnicodeDecodeError) before."""
    import pathlib

    config = pathlib.Path(str(tmp_path)) / "ws.conf"
    config.write_bytes(b"verbose = true\n\xff\xfe\n")
    with pytest.raises(SystemExit) as info:
        parse_cli([arg.format(config) for arg in form] + ["1", "h:2"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        f"{USAGE}\nwebsockify: error: Unable to read config file: {config}. Error: 'utf-8' "
        "codec can't decode byte 0xff in position 15: invalid start byte\n")


def test_help_starts_with_the_usage_block_and_lists_options_in_websockify_order(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_cli(["-h"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(USAGE + "\nOptions:\n  -h, --help")
    order = ["--verbose", "--traffic", "--record", "--daemon", "--run-once", "--timeout",
             "--idle-timeout", "--cert", "--key ", "--key-password", "--ssl-only", "--ssl-target",
             "--verify-client", "--cafile", "--ssl-version", "--ssl-ciphers", "--unix-listen ",
             "--unix-listen-mode", "--unix-target", "--inetd", "--web ", "--web-auth",
             "--wrap-mode", "--prefer-ipv6", "--libserver", "--target-config", "--token-plugin",
             "--token-source", "--host-token", "--auth-plugin", "--auth-source", "--heartbeat",
             "--log-file", "--syslog", "--legacy-syslog", "--file-only"]
    options = out[len(USAGE):]
    positions = [options.index(name) for name in order]
    assert positions == sorted(positions)


# -- operation options (issue 10) ---------------------------------------------------------


def test_operation_options_reach_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = parse_cli(["--daemon", "--pid-file", "p.pid", "--metrics-path", "/m", "--health-path",
                   "/h", "--stats-interval", "2.5", "--log-format", "both", "--drain-timeout",
                   "3", "--response-header", "X-A: 1", "--response-header", "Cache-Control:no",
                   "--wrap-mode", "respawn", "6080", "h:1"])
    assert (s.daemon, s.pid_file) == (True, str(tmp_path / "p.pid"))
    assert (s.metrics_path, s.health_path, s.stats_interval) == ("/m", "/h", 2.5)
    assert (s.log_format, s.drain_timeout, s.wrap_mode) == ("both", 3.0, "respawn")
    assert s.response_headers == (("X-A", "1"), ("Cache-Control", "no"))


@pytest.mark.parametrize("args", [
    ["--response-header", "Bad Name: x"],
    ["--response-header", "novalue"],
    ["--response-header", "X-A: a\x0bb"],  # once accepted, then every 101 failed
    ["--response-header", "X-A: \u2603"],  # not Latin-1
    ["--metrics-path", "metrics"],
    ["--drain-timeout", "-1"],
    ["--log-format", "xml"],
])
def test_bad_operation_options_are_usage_errors(args: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_cli([*args, "6080", "h:1"])
    assert exit_info.value.code == 2
    assert "websockify: error: option " in capsys.readouterr().err


def test_listen_fd_takes_the_place_of_the_listen_address() -> None:
    s = parse_cli(["--listen-fd", "3", "h:1"])
    assert (s.listen_fd, s.target_host, s.target_port) == (3, "h", 1)
    assert s.listen_display == "fd 3"
