"""proxy.protocol.closes.CloseCode (issue #17 §2): an IntEnum that prints its number on
every Python, 3.10 included (where ``str()`` of an IntEnum member is ``Class.NAME``)."""

from __future__ import annotations

import json
import logging

import pytest
from wsproto.events import CloseConnection
from wsproto.frame_protocol import CloseReason

from proxy.protocol.closes import CloseCode, CloseInfo, protocol_error
from proxy.protocol.stream import ClientStream
from tests.support.wspair import open_pair


@pytest.mark.parametrize("code", list(CloseCode))
def test_a_close_code_prints_its_number_in_every_form(code: CloseCode) -> None:
    number = str(code.value)
    assert [str(code), "%s" % code, f"{code}", "%d" % code, json.dumps(code)] == [number] * 5
    assert f"{code:>6}" == number.rjust(6)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "closed %s", (code,), None)
    assert record.getMessage() == f"closed {number}"


def test_wsproto_codes_become_ours_and_application_codes_stay_numbers() -> None:
    assert CloseInfo(CloseReason.NORMAL_CLOSURE, "", True).code is CloseCode.NORMAL
    other = CloseInfo(4000, "app", True).code
    assert (type(other), str(other)) == (int, "4000")
    assert protocol_error(CloseReason.PROTOCOL_ERROR, "x") == (CloseCode.PROTOCOL_ERROR, "x")
    assert type(protocol_error(CloseReason.PROTOCOL_ERROR, "x")[0]) is CloseCode


def test_a_client_close_is_recorded_with_our_close_code() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    stream.receive(client.send(CloseConnection(code=1001, reason="bye")))
    assert stream.close_info == CloseInfo(CloseCode.GOING_AWAY, "bye", by_client=True)
    assert stream.close_info is not None and "%s" % stream.close_info.code == "1001"
    assert type(stream.close_info.code) is CloseCode
