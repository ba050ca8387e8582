"""proxy.settings: flat keyword construction and the frozen parts (issue #17 §2)."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.process.cli import parse_cli
from proxy.settings import Limits, LogSettings, Settings, TlsSettings


def changed(field: dataclasses.Field[object]) -> object:
    """A value of the field's type that differs from its default."""
    if field.type == "bool":
        return True
    if field.type == "str | None":
        return "/changed"
    return {"ssl_version": "tlsv1_3", "log_format": "json"}[field.name]


@pytest.mark.parametrize(("part", "name"), [(TlsSettings, "tls"), (LogSettings, "logging")])
def test_each_flat_keyword_reaches_its_part(part: type[object], name: str) -> None:
    for field in dataclasses.fields(part):  # type: ignore[arg-type]
        value = changed(field)
        settings = Settings(**{field.name: value})  # type: ignore[arg-type]
        assert getattr(getattr(settings, name), field.name) == value, field.name
        assert getattr(getattr(Settings(), name), field.name) == field.default, field.name


def test_the_relay_limits_come_from_their_options() -> None:
    settings = Settings(high_water=1, recv_size=2, heartbeat=3.0, close_timeout=4.0,
                        conn_idle_timeout=5.0, max_session_time=6.0, heartbeat_timeout=8.0,
                        stall_timeout=9.0)
    assert settings.limits == Limits(high_water=1, recv_size=2, heartbeat=3.0, close_timeout=4.0,
                                     idle_timeout=5.0, session_time=6.0, heartbeat_timeout=8.0,
                                     stall_timeout=9.0)
    assert Settings().limits == Limits()


def test_the_command_line_reaches_the_limits() -> None:
    settings = parse_cli(["--heartbeat", "3", "--conn-idle-timeout", "5",
                          "--max-session-time", "7", "--stall-timeout", "0", "1", "h:2"])
    assert settings.limits == Limits(heartbeat=3.0, idle_timeout=5.0, session_time=7.0,
                                     stall_timeout=0.0)


def test_replace_keeps_the_parts_in_step_with_the_fields() -> None:
    settings = dataclasses.replace(Settings(cert="/a.pem", verbose=True), cert="/b.pem",
                                   max_session_time=30.0)
    assert (settings.tls.cert, settings.logging.verbose) == ("/b.pem", True)
    assert settings.limits.session_time == 30.0


def test_the_parts_are_frozen_and_left_out_of_equality() -> None:
    settings = Settings(target_port=5900)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.limits = Limits()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.tls.cert = "/x"  # type: ignore[misc]
    assert settings == Settings(target_port=5900)
    assert "limits" not in repr(settings)
