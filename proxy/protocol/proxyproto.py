"""The PROXY protocol v1 header sent to the target with ``--target-proxy-protocol``.

Pure: builds bytes from addresses; ``handler`` sends them right after connecting, before
any relayed byte. Format: haproxy's proxy-protocol.txt §2.1 (a single line, at most 107
bytes). websockify has no such option (upstream issue #630).
"""

from __future__ import annotations

import ipaddress

Address = tuple[str, int]
#: What a receiver accepts when the addresses cannot be expressed (proxy-protocol.txt §2.1).
UNKNOWN = b"PROXY UNKNOWN\r\n"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def v1_header(source: Address | None, destination: Address | None) -> bytes:
    """``PROXY TCP4|TCP6 src dst sport dport\\r\\n``, or ``PROXY UNKNOWN\\r\\n``.

    Args:
        source: the client (address, port); port 0 when it is not known.
        destination: the address and port the client connected to.

    Mixed families are sent as TCP6 with the IPv4 address mapped (``::ffff:a.b.c.d``);
    anything that is not an IP address (a Unix socket client) gives ``UNKNOWN``.
    """
    if source is None or destination is None:
        return UNKNOWN
    src, dst = _ip(source[0]), _ip(destination[0])
    if src is None or dst is None:
        return UNKNOWN
    if src.version == dst.version == 4:
        family, addresses = "TCP4", (str(src), str(dst))
    else:
        # Spelled out: str() of a mapped address differs between Python versions.
        family = "TCP6"
        addresses = (_v6(src), _v6(dst))
    return (f"PROXY {family} {addresses[0]} {addresses[1]} {source[1] & 0xFFFF} "
            f"{destination[1] & 0xFFFF}\r\n".encode("ascii"))


def _v6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address for a TCP6 line; IPv4 (plain or mapped) as ``::ffff:a.b.c.d``."""
    if isinstance(address, ipaddress.IPv4Address):
        return f"::ffff:{address}"
    mapped = address.ipv4_mapped
    return f"::ffff:{mapped}" if mapped is not None else str(address)
