"""One listening server and its connections: ``ProxyServer``, the per-connection handler
(HTTP request, upgrade, target, relay) and the plain-HTTP ``--web``/diagnostics pages.

Rule: composes the packages below; knows nothing of the process (signals, forks, argv).
"""
