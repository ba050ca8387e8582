"""The client address behind a trusted reverse proxy (``--trusted-proxy``).

Pure: header values and addresses in, an address out. websockify ignores
``X-Forwarded-For`` and ``Forwarded`` everywhere (spec §4.6, upstream issue #334); we
read them only when the TCP peer is a trusted proxy, so nobody else can choose the
address that ends up in our logs or in the PROXY header to the target.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from email.message import Message

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: One address as a proxy writes it: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:5678``, ``::1``.
_BRACKETED = re.compile(r"^\[([^\]]+)\](?::(\d+))?$")
_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def parse_trusted(value: str) -> tuple[Network, ...]:
    """``ADDR[,ADDR|CIDR]...`` -> networks (an address is a /32 or /128).

    Raises:
        ValueError: an item is neither an address nor a network.
    """
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ValueError(f"no address in {value!r}")
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError:
        raise ValueError(f"invalid address or network in {value!r}") from None


def parse_node(text: str) -> tuple[IPAddress, int] | None:
    """An address with an optional port as found in the headers; None if it is none."""
    text = text.strip().strip('"')
    port = "0"
    match = _BRACKETED.match(text)
    if match:
        text, port = match.group(1), match.group(2) or "0"
    elif text.count(":") == 1:
        text, port = text.split(":")
    try:
        return ipaddress.ip_address(text), int(port) if port.isdigit() else 0
    except ValueError:
        return None


def is_trusted(address: IPAddress, trusted: Iterable[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def trusted_peer(peer: object, trusted: Sequence[Network]) -> bool:
    """Whether the socket peer (an address tuple; anything else for Unix sockets) is one
    of the ``trusted`` proxies."""
    node = parse_node(str(peer[0])) if trusted and isinstance(peer, tuple) and peer else None
    return node is not None and is_trusted(node[0], trusted)


def forwarded_chain(headers: Message) -> list[str]:
    """The hops named by ``X-Forwarded-For`` or, without it, ``Forwarded`` (RFC 7239).

    Left to right, the client first. ``X-Forwarded-For`` wins because HAProxy's
    ``option forwardfor`` and nginx's ``$proxy_add_x_forwarded_for`` write it; the
    balancer should delete the header it does not write (docs/scaling.rst).
    """
    xff = headers.get_all("X-Forwarded-For") or []
    if xff:
        return [hop for value in xff for hop in str(value).split(",")]
    forwarded = headers.get_all("Forwarded") or []
    return [match.group(1) for value in forwarded for element in str(value).split(",")
            for match in [_FOR.search(element)] if match]


def client_address(peer: tuple[str, int], headers: Message,
                   trusted: Sequence[Network]) -> tuple[str, int]:
    """The real client: ``peer`` unless it is trusted and the headers name someone else.

    The chain is walked from the right (the hop our peer added) while the hops are
    trusted proxies; the first untrusted one is the client. A hop that is not an
    address (``unknown``, an obfuscated name) stops the walk at the proxy that sent it.
    """
    if not trusted_peer(peer, trusted):
        return peer
    result = (peer[0], peer[1])
    for hop in reversed(forwarded_chain(headers)):
        node = parse_node(hop)
        if node is None:
            break
        result = (str(node[0]), node[1])
        if not is_trusted(node[0], trusted):
            break
    return result
