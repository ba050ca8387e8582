"""What the proxy tells its operators: logging setup, request and session logs, JSON lines,
metrics, the health and metrics probes, ``--traffic`` and ``--record`` and their replay.

Rule: observes the lower packages; never decides what a connection does.
"""
