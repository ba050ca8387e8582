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
        family = "TCP4"
    else:
        family = "TCP6"
        src, dst = (ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a
                    for a in (src, dst))
    return (f"PROXY {family} {src} {dst} {source[1] & 0xFFFF} {destination[1] & 0xFFFF}\r\n"
            .encode("ascii"))
