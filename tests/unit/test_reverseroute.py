"""Which requests go to a parked server (issue #20 §1): ``reverseroute.repeater_target``."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from proxy.errors import TokenError
from proxy.serve.reverseroute import ASK, repeater_target
from proxy.settings import Settings, Target

REVERSE_ONLY = Settings(reverse_listen=(("127.0.0.1", 5500),))
WITH_TARGET = Settings(reverse_listen=(("127.0.0.1", 5500),), target_host="127.0.0.1",
                       target_port=5900)
PLUGIN = object()


def test_without_reverse_listen_nothing_changes() -> None:
    assert repeater_target(Settings(target_host="h", target_port=1), None, "reverse:1") is None


def test_reverse_only_every_token_is_an_id_and_no_token_asks() -> None:
    assert repeater_target(REVERSE_ONLY, None, "1234") == Target(repeater_id="1234")
    assert repeater_target(REVERSE_ONLY, None, "reverse:1234") == Target(repeater_id="1234")
    assert repeater_target(REVERSE_ONLY, None, None) == Target(repeater_id=ASK)


@pytest.mark.parametrize(("settings", "plugin"), [(WITH_TARGET, None), (REVERSE_ONLY, PLUGIN)])
def test_with_a_target_or_plugin_only_reverse_tokens_name_an_id(settings: Settings,
                                                                plugin: object) -> None:
    assert repeater_target(settings, plugin, "1234") is None
    assert repeater_target(settings, plugin, None) is None
    assert repeater_target(settings, plugin, "reverse:1234") == Target(repeater_id="1234")


def test_an_invalid_id_is_404() -> None:
    with pytest.raises(TokenError) as info:
        repeater_target(REVERSE_ONLY, None, "reverse:a b")
    assert (info.value.status, info.value.reason) == (HTTPStatus.NOT_FOUND, "Invalid repeater ID")
    assert info.value.log_line == "Invalid repeater ID 'a b'"


def test_display_names_the_id() -> None:
    assert Target(repeater_id="7").display == "repeater ID 7"
    assert Target(repeater_id=ASK).display == "repeater ID (asked)"
