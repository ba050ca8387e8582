"""A pytest plugin for websockify 0.13.0's own test files (scripts/websockify-tests, #18).

Their tests run unchanged; the few that can only pass by copying websockify's internals
are skipped here, each with its reason. A listed test that is no longer collected is an
error, so the list cannot go stale silently.
"""

from __future__ import annotations

import pytest

_OPEN_PATCH = ("patches open() inside websockify's own module (websockify.token_plugins.open); "
               "our ReadOnlyTokenFile reads its file in proxy.access.tokens.files, and token file "
               "lines are tested with real files in tests/unit/test_tokens.py")

#: node id -> why it cannot pass without copying websockify's internals.
SKIPS = {
    "tests/test_token_plugins.py::ReadOnlyTokenFileTestCase::test_empty": _OPEN_PATCH,
    "tests/test_token_plugins.py::ReadOnlyTokenFileTestCase::test_simple": _OPEN_PATCH,
    "tests/test_token_plugins.py::ReadOnlyTokenFileTestCase::test_tabs": _OPEN_PATCH,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    seen = set()
    for item in items:
        reason = SKIPS.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
            seen.add(item.nodeid)
    missing = sorted(set(SKIPS) - seen)
    if missing:
        raise pytest.UsageError(
            f"websockify_skips.py lists tests that were not collected: {missing}")
