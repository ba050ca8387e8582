"""The process: the command line to ``Settings``, logging and systemd set-up, daemon,
workers and wrap mode, and ``runner`` that serves until a signal or timeout ends it.

Rule: the top of the house; nothing in ``proxy`` imports it but the entry points.
"""
