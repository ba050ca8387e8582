"""websockify's module names for websockify-threaded (issue #18).

Installed as the top-level package ``websockify`` (setup.cfg ``package_dir``), so that
``python -m websockify`` runs the command and a plugin written for websockify
(``from websockify.auth_plugins import BasePlugin``) imports our classes in any program.
Importing it has no side effects: the submodules are loaded only when named.

Only the command and the plugin modules are provided; websockify's server library
(``websockify.websocketproxy``, ``websockify.websockifyserver``) is not (README.rst,
"Differences from websockify 0.13.0").
"""

from proxy import __version__

__all__ = ["__version__"]
