"""WebSocket and HTTP protocol rules, pure: the handshake decision, the frame policy
(``stream``), close codes, permessage-deflate, ``Forwarded`` and the PROXY header.

Rule: nothing here touches a socket; it imports only ``proxy.errors`` and ``proxy.settings``.
"""
