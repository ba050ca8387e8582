"""Moving bytes: TLS contexts and the first-byte sniff, reading the HTTP request head,
dialling the target, and the per-connection relay loop with its timers.

Rule: never parses a WebSocket frame itself (``proxy.protocol.stream`` does); imports only
packages below it (``proxy.protocol``, ``proxy.access``) and the leaves.
"""
