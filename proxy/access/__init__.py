"""Who may connect and where to: admission (connection limits), the token and auth
plugins and their loading, and target resolution (``resolve``).

Rule: never touches the proxy's sockets (plugins may do their own I/O); imports only the
leaves (``proxy.errors``, ``proxy.settings``) and ``proxy.protocol``.
"""
