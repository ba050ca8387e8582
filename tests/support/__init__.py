"""Helpers shared by the unit and integration tests (backends, process control, WS clients)."""
