"""SIGHUP: what each process reloads, and the one line it logs (issue #16 §1).

Reopen ``--log-file``, reload the TLS certificate and the token files where configured,
then log ``SIGHUP: ...`` saying what was reloaded; ``RELOADING=1``/``READY=1`` go to
systemd around it. websockify dies on SIGHUP; so does this process in the foreground
with stderr on a terminal (``hangup_ends_process``), where a hangup means the terminal
went away.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from types import FrameType

from proxy.observe import logsetup
from proxy.process import sdnotify
from proxy.serve.server import ProxyServer
from proxy.settings import Settings

log = logging.getLogger("proxy.runner")  # the runner's lines, as before the split


#: The line each process logs after a SIGHUP (issue #16 Operations 2 §1).
RELOADED = "SIGHUP: reloaded {}"
NOTHING_TO_RELOAD = "SIGHUP: nothing to reload"
NOTHING_RELOADED = "SIGHUP: nothing reloaded"
#: The ``--workers`` parent's lines: the workers reload (and log) the rest themselves.
FORWARDED = "SIGHUP: forwarded to the workers"
PARENT_RELOADED = "SIGHUP: reloaded {}; forwarded to the workers"


def hangup_ends_process(settings: Settings) -> bool:
    """Whether SIGHUP keeps its default action: in the foreground with stderr on a terminal,
    a hangup means the terminal went away, and the process ends as websockify's does (§10).
    Everywhere else (systemd's ``ExecReload``, logrotate, ``--daemon``) SIGHUP reloads."""
    return not settings.daemon and os.isatty(2)


def _reload_token_plugin(server: ProxyServer) -> str | None:
    """Reload a token plugin that can; its description for the SIGHUP line, or None."""
    plugin_reload = getattr(server.token_plugin, "reload", None)
    if not callable(plugin_reload):
        return None
    try:
        done = plugin_reload()
    except Exception as exc:  # a user plugin's reload(); the server must go on
        log.warning("token plugin not reloaded: %s", exc)
        return None
    return done if isinstance(done, str) else f"tokens of {type(server.token_plugin).__name__}"


def reload(server: ProxyServer) -> None:
    """Reopen the log file, reload the TLS certificate and the token files, in that order,
    then log one line saying what was reloaded; ``RELOADING=1``/``READY=1`` around it."""
    sdnotify.reloading()
    done = [f"log file {path}" for path in logsetup.reopen()]
    configured = bool(done or server.settings.log_file)
    if server.server_tls.context is not None:
        configured = True
        if server.server_tls.reload():
            done.append(f"TLS certificate {server.settings.cert}")
    if callable(getattr(server.token_plugin, "reload", None)):
        configured = True
        tokens = _reload_token_plugin(server)
        if tokens is not None:
            done.append(tokens)
    if done:
        log.info("%s", RELOADED.format(", ".join(done)))
    else:
        log.info("%s", NOTHING_RELOADED if configured else NOTHING_TO_RELOAD)
    sdnotify.notify("READY=1")


def reload_parent() -> None:
    """``--workers`` parent's SIGHUP: its own log file; the workers got the signal."""
    sdnotify.reloading()
    reopened = logsetup.reopen()
    if reopened:
        log.info("%s", PARENT_RELOADED.format(", ".join(f"log file {p}" for p in reopened)))
    else:
        log.info("%s", FORWARDED)
    sdnotify.notify("READY=1")


def in_thread(work: Callable[[], None]) -> Callable[[int, FrameType | None], None]:
    """A SIGHUP handler that runs ``work`` in a short thread.

    Not in the signal handler itself: it interrupts the main thread anywhere, possibly
    inside a logging call holding a handler's lock, and swapping a log file's stream under
    it would make that write fail; a thread waits for the lock like any other logger.
    """
    def on_sighup(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=work, name="reload", daemon=True).start()
    return on_sighup


def sighup_handler(server: ProxyServer) -> Callable[[int, FrameType | None], None]:
    """SIGHUP: reload everything together (``reload``), in a short thread."""
    return in_thread(lambda: reload(server))
