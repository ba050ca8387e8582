"""TLS for both ends: the contexts, the first-byte sniff and handshakes bounded by a deadline.

Contexts are built once from ``Settings`` (websockify reloaded the chain on every
connection, spec §7.6) and only swapped whole by a SIGHUP reload. This module never parses
HTTP and never relays; the handler decides what a sniff result means (spec §4.1).
"""

from __future__ import annotations

import enum
import logging
import os
import select
import socket
import ssl
import threading
import time
from typing import Any

from proxy.errors import StartupError, TargetError
from proxy.settings import Settings
from proxy.transport.sockio import recv_ready

log = logging.getLogger("proxy.tls")

#: First byte of a TLS record carrying a handshake message (the ClientHello).
TLS_HANDSHAKE = 0x16
#: First byte of an SSLv2-compatible ClientHello; websockify accepts it too (spec §4.1).
SSLV2_HELLO = 0x80
#: ``--ssl-version`` -> lowest protocol accepted. websockify replaces the option bits
#: instead (spec §7.6); we keep Python's secure defaults, whose floor is already TLS 1.2,
#: so ``default``, ``tlsv1_1`` and ``tlsv1_2`` behave as websockify's do on Python >= 3.10.
MINIMUM_VERSIONS = {
    "default": ssl.TLSVersion.TLSv1_2,
    "tlsv1_1": ssl.TLSVersion.TLSv1_2,
    "tlsv1_2": ssl.TLSVersion.TLSv1_2,
    "tlsv1_3": ssl.TLSVersion.TLSv1_3,
}


class Sniff(enum.Enum):
    """What the first byte of a connection says."""

    TLS = "tls"
    PLAIN = "plain"
    #: Nothing arrived within the deadline, or the client closed: close silently (§4.1).
    NOTHING = "nothing"


def classify(first: bytes) -> Sniff:
    """The sniff result for the peeked bytes (empty = EOF)."""
    if not first:
        return Sniff.NOTHING
    return Sniff.TLS if first[0] in (TLS_HANDSHAKE, SSLV2_HELLO) else Sniff.PLAIN


def sniff(sock: socket.socket, timeout: float) -> Sniff:
    """Peek at the first byte, waiting up to ``timeout`` seconds; consumes nothing."""
    try:
        first = recv_ready(sock, 1, socket.MSG_PEEK)  # usually there: no wait (issue #19)
        if first is None:
            sock.settimeout(timeout)
            first = sock.recv(1, socket.MSG_PEEK)
    except OSError:  # TimeoutError included: websockify closes silently after 3 s
        return Sniff.NOTHING
    return classify(first)


def _wait(sock: socket.socket, writable: bool, deadline: float) -> None:
    """Wait until ``sock`` is readable (or writable) or raise TimeoutError at ``deadline``."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT if writable else select.POLLIN)
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not poller.poll(remaining * 1000):
        raise TimeoutError("TLS handshake not completed within the deadline")


def handshake(sock: ssl.SSLSocket, timeout: float) -> None:
    """Complete the handshake within ``timeout`` seconds in total.

    A socket timeout would bound each read, so a client trickling its ClientHello one
    byte at a time could hold the thread for ever; this bounds the whole exchange.
    Leaves the socket blocking.

    Raises:
        ssl.SSLError, OSError: the handshake failed; TimeoutError: the deadline passed.
    """
    deadline = time.monotonic() + timeout
    sock.setblocking(False)
    while True:
        try:
            sock.do_handshake()
            break
        except ssl.SSLWantReadError:
            _wait(sock, False, deadline)
        except ssl.SSLWantWriteError:
            _wait(sock, True, deadline)
    sock.setblocking(True)


def accept(sock: socket.socket, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    """Server side: wrap ``sock`` and complete the handshake within ``timeout`` seconds.

    ``sock`` is detached by the wrap either way; on failure the SSLSocket is closed here,
    so the descriptor never outlives the call (notes/libraries.md §4.1: closing only the
    original object leaked fds).
    """
    tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    try:
        handshake(tls, timeout)
    except BaseException:
        tls.close()
        raise
    return tls


def connect_target(sock: socket.socket, context: ssl.SSLContext, host: str,
                   timeout: float) -> ssl.SSLSocket:
    """``--ssl-target``: wrap the connected target socket as a TLS client (SNI = ``host``).

    Raises:
        TargetError: the handshake or the certificate check failed; the message is the
            SSL error, as websockify logs it (spec §7.6). ``sock`` is closed.
    """
    try:
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except (OSError, ValueError) as exc:
        sock.close()
        raise TargetError(str(exc)) from exc
    try:
        handshake(tls, timeout)
    except OSError as exc:  # ssl.SSLError and TimeoutError are OSErrors
        tls.close()
        raise TargetError(str(exc)) from exc
    return tls


def peer_common_name(sock: ssl.SSLSocket) -> str | None:
    """The subject commonName of a *verified* client certificate, else None (spec §9.1).

    ``getpeercert()`` is empty unless the certificate was verified (``--verify-client``).
    With several CNs the last wins, as in websockify.
    """
    cert: Any = sock.getpeercert()
    name = None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
    return name


# -- server context ------------------------------------------------------------------------


class _PasswordNeeded(Exception):
    """The key is encrypted and no ``--key-password`` was given."""


def _no_password() -> str:
    # Without a callback OpenSSL prompts on the terminal, blocking the server.
    raise _PasswordNeeded


def _check_readable(path: str, what: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise StartupError(f"cannot read {what} file '{path}': {exc.strerror or exc}") from exc


def _has_certificate(path: str) -> bool:
    """Whether ``path`` holds at least one PEM certificate OpenSSL can parse."""
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        scratch.load_verify_locations(cafile=path)
    except (OSError, ValueError):
        return False
    return True


def _load_chain(context: ssl.SSLContext, settings: Settings, cert: str) -> None:
    key = settings.tls.key or cert
    _check_readable(cert, "certificate")
    if settings.tls.key:
        _check_readable(settings.tls.key, "key")
    password = settings.tls.key_password
    try:
        context.load_cert_chain(cert, settings.tls.key, password if password is not None
                                else _no_password)
    except _PasswordNeeded:
        raise StartupError(f"the private key in '{key}' is encrypted: give --key-password")
    except ssl.SSLError as exc:
        if not _has_certificate(cert):
            raise StartupError(f"no usable PEM certificate in '{cert}': {exc}") from exc
        hint = "wrong --key-password or no usable private key" if password is not None \
            else "no usable private key"
        raise StartupError(f"cannot load the private key in '{key}' ({hint}): {exc}") from exc


def build_server_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for wss:// clients, or None for plain connections only.

    None when no certificate is configured, or when the default ``self.pem`` is absent
    (websockify then serves ws:// only, spec §3.2).

    Raises:
        StartupError: an explicit ``--cert``/``--key`` cannot be read or parsed, the key
            password is wrong or missing, or ``--cafile``/``--ssl-ciphers`` is unusable.
    """
    cert = settings.tls.cert
    if cert is None or (not settings.tls.cert_required and not os.path.exists(cert)):
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=settings.tls.cafile)
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot load --cafile '{settings.tls.cafile}': {exc}") from exc
    context.minimum_version = MINIMUM_VERSIONS[settings.tls.ssl_version]
    _load_chain(context, settings, cert)
    if settings.tls.ssl_ciphers:
        try:
            context.set_ciphers(settings.tls.ssl_ciphers)
        except ssl.SSLError as exc:
            raise StartupError(f"--ssl-ciphers '{settings.tls.ssl_ciphers}': {exc}") from exc
    if settings.tls.verify_client:
        # websockify: CERT_REQUIRED against --cafile or the system CAs (spec §7.3).
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class ServerTLS:
    """The current server context; ``reload()`` swaps in a new one (SIGHUP).

    Connection threads read ``context`` once, when a TLS client arrives, so connections
    already open keep the certificate they were served with. Rebinding the attribute is
    atomic; ``_reload_lock`` only keeps two reloads from interleaving their log lines.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = build_server_context(settings)
        self._reload_lock = threading.Lock()

    def reload(self) -> bool:
        """Load the certificate and key again; on failure keep the old ones and warn.

        Returns:
            Whether the new certificate is in use (the caller reports it).
        """
        with self._reload_lock:
            try:
                context = build_server_context(self.settings)
            except StartupError as exc:
                log.warning("TLS certificate not reloaded, keeping the previous one: %s", exc)
                return False
            if context is None:
                if self.context is not None:
                    log.warning("TLS certificate not reloaded, keeping the previous one: "
                                "'%s' not found", self.settings.tls.cert)
                return False
            self.context = context
            return True  # the caller logs one line for the whole reload (#16)


# -- target context ------------------------------------------------------------------------


def build_target_context(settings: Settings) -> ssl.SSLContext | None:
    """The client context for ``--ssl-target``, or None without it.

    websockify verifies against the system CAs and checks the host name (spec §7.6);
    ``--ssl-target-cafile`` trusts only that file, ``--ssl-target-no-verify`` nothing.

    Raises:
        StartupError: ``--ssl-target-cafile`` cannot be read or holds no certificate.
    """
    if not settings.tls.ssl_target:
        return None
    if settings.tls.ssl_target_no_verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=settings.tls.ssl_target_cafile)
    except (OSError, ValueError) as exc:
        raise StartupError(
            f"cannot load --ssl-target-cafile '{settings.tls.ssl_target_cafile}': {exc}") from exc
