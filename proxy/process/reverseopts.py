"""The repeater's options (issue #20 §1; docs/repeater.rst): parsed and checked here so
``cli`` and ``configure`` only call in."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from typing import Any, NoReturn

from proxy.process.optiontypes import optparse_int, seconds

Error = Callable[[str], NoReturn]


def add_options(parser: Any) -> None:
    add = parser.add_argument
    add("--reverse-listen", action="append", metavar="[HOST:]PORT",
        help="accept VNC servers dialling in (UltraVNC repeater mode II, x11vnc -connect "
             "repeater=ID:N+host:port) and park them by ID for browsers (repeatable)")
    add("--reverse-wait", type=seconds, default=5.0, metavar="SECONDS",
        help="how long a browser waits for the server with its ID to dial in (default 5)")
    add("--reverse-max-parked", type=optparse_int, default=100, metavar="N",
        help="refuse servers dialling in beyond N parked connections (default 100)")
    add("--reverse-max-parked-per-ip", type=optparse_int, default=10, metavar="N",
        help="refuse servers dialling in beyond N parked connections from one address "
             "(default 10)")
    add("--reverse-allow", action="append", metavar="CIDR",
        help="only these networks may dial in to --reverse-listen (repeatable; default any)")


def settings_part(opts: argparse.Namespace, error: Error) -> dict[str, Any]:
    """The ``Settings`` keywords; usage errors as websockify words them (exit 2)."""
    if not opts.reverse_listen:
        if opts.reverse_allow:
            error("You must use --reverse-listen to use --reverse-allow")
        return {}
    if opts.workers > 1:
        # Parked sockets would live in one worker and browsers land on any (issue #20 §1).
        error("--reverse-listen cannot be used with --workers")
    for name in ("reverse_max_parked", "reverse_max_parked_per_ip"):
        if getattr(opts, name) < 0:
            error(f"--{name.replace('_', '-')} must not be negative")
    addresses = []
    for value in opts.reverse_listen:
        host, _, port_text = value.rpartition(":")
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            error(f"Error parsing --reverse-listen port: {value!r}")
        addresses.append((host.strip("[]"), int(port_text)))
    networks = []
    for value in opts.reverse_allow or ():
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            error(f"--reverse-allow: not a network: {value!r}")
    return {"reverse_listen": tuple(addresses), "reverse_wait": float(opts.reverse_wait),
            "reverse_max_parked": opts.reverse_max_parked,
            "reverse_max_parked_per_ip": opts.reverse_max_parked_per_ip,
            "reverse_allow": tuple(networks)}
