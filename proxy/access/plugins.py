"""Load token and auth plugins by name, as websockify does (spec §8.1, §9.1).

A bare name is one of ours (``TokenFile`` -> ``proxy.tokens.TokenFile``); a dotted name
is imported. ``websockify.token_plugins.X`` and ``websockify.auth_plugins.X`` mean ours.
The distribution installs a ``websockify`` package (``proxy/_websockify``, issue #18), so a
plugin written for websockify (``from websockify.auth_plugins import AuthenticationError``)
imports ours in any program; only where that package is not importable (a source tree run
without ``pip install``) are its modules registered as aliases when a plugin is loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from proxy.errors import StartupError

#: Where bare plugin names live, by plugin kind.
BUILTIN_MODULES = {"token": "proxy.tokens", "auth": "proxy.auth"}
#: websockify's plugin modules and ours.
WEBSOCKIFY_MODULES = {
    "websockify.token_plugins": "proxy.tokens",
    "websockify.auth_plugins": "proxy.auth",
}
#: The source of the installed ``websockify`` package (setup.cfg ``package_dir``).
ALIAS_PACKAGE = "proxy._websockify"


def install_websockify_aliases() -> None:
    """Make ``import websockify.auth_plugins`` work where no ``websockify`` is installed."""
    if "websockify" in sys.modules:
        return
    try:
        installed = importlib.util.find_spec("websockify")
    except (ImportError, ValueError):
        installed = None
    if installed is not None:
        return  # ours (proxy/_websockify), or the real one a user's plugin expects
    package = importlib.import_module(ALIAS_PACKAGE)
    sys.modules["websockify"] = package
    for alias in WEBSOCKIFY_MODULES:
        sys.modules[alias] = importlib.import_module(
            f"{ALIAS_PACKAGE}.{alias.rsplit('.', 1)[1]}")


def resolve_name(name: str, kind: str) -> tuple[str, str]:
    """(module, class) for a plugin name; bare names are built-ins of ``kind``."""
    if "." not in name:
        return BUILTIN_MODULES[kind], name
    module, cls = name.rsplit(".", 1)
    return WEBSOCKIFY_MODULES.get(module, module), cls


def load_plugin(name: str, kind: str, source: str | None) -> Any:
    """Import and instantiate the ``kind`` ("token" or "auth") plugin ``name`` with ``source``.

    Raises:
        StartupError: the module or class cannot be found, or the constructor failed
            (exit 1, spec §2.5; websockify prints a traceback instead).
    """
    install_websockify_aliases()
    module_name, class_name = resolve_name(name, kind)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StartupError(f"cannot load {kind} plugin {name}: {exc}") from exc
    except Exception as exc:  # the module's own code failed (#15 Reliability 2: a traceback)
        raise StartupError(f"cannot load {kind} plugin {name}: "
                           f"{type(exc).__name__}: {exc}") from exc
    plugin_class = getattr(module, class_name, None)
    if not isinstance(plugin_class, type):
        raise StartupError(f"cannot load {kind} plugin {name}: module {module_name!r} "
                           f"has no class {class_name!r}")
    try:
        return plugin_class(source)
    except StartupError:
        raise
    except Exception as exc:  # user code at a trust boundary: report it, exit 1
        raise StartupError(f"{kind} plugin {name} failed to start: {exc}") from exc
