"""proxy.cli.parse_cli: websockify's positional forms and usage errors (spec §2)."""

from __future__ import annotations

import pytest

from proxy.cli import parse_cli
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
    ],
)
def test_positional_forms(argv: list[str], listen: tuple[str, int], target: tuple[str, int]) -> None:
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
