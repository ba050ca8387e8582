"""scripts/bench.d/chart.py's number format, scale choice and table reading (no matplotlib).

The chart had ``1.52e+031.52e+03`` labels and bars invisible on linear axes (#16
Operations 2); what decides the labels and the scales is checked here, the picture itself
by looking at it (docs/benchmarks.rst says how it was drawn).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_chart",
                                                  ROOT / "scripts" / "bench.d" / "chart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # matplotlib is imported only to draw
    return module


@pytest.mark.parametrize(
    ("value", "text"),
    [(2805.4, "2,805"), (1515.0, "1,515"), (216190.0, "216,190"), (95.5, "95.5"),
     (36.0, "36"), (14.1, "14.1"), (0.0557, "0.0557"), (0.04, "0.04"), (0.005, "0.005"),
     (0.0, "0")],
)
def test_labels_are_plain_numbers(chart: ModuleType, value: float, text: str) -> None:
    assert chart.plain(value) == text


def test_a_log_scale_only_where_peers_differ_by_orders_of_magnitude(chart: ModuleType) -> None:
    assert chart.log_scale([0.005, 0.056, 13.8, 15.1])  # one 16 MiB message
    assert chart.log_scale([61.0, 3713.0, 36.0])  # idle PSS per connection
    assert not chart.log_scale([2783.0, 1515.0, 1736.0])  # target→client
    assert not chart.log_scale([26.3, 106.0, 95.5])  # echo p50


def test_the_medians_are_read_back_from_docs_benchmarks_rst(chart: ModuleType) -> None:
    """The medians of the Results run are read back from docs (the chart can be redrawn
    from them when a run's JSON is not kept); rows without a panel are skipped."""
    peers, figures, title = chart.from_rst((ROOT / "docs" / "benchmarks.rst").read_text())
    assert peers == ["direct", "socat", "chain", "wsfy-numpy", "wsfy-plain", "ours",
                     "ours-numpy", "ours-w2"]
    assert title == "scripts/bench, 2026-12-07: medians of 3"
    assert figures[("c2t", "value")]["wsfy-plain"] == 10.2
    assert figures[("msgs1k", "value")]["ours"] == 73957
    assert figures[("echo", "p99")]["ours-w2"] == 603
    assert figures[("big", "value")] == {
        "direct": 0.010, "socat": 0.017, "chain": 0.062, "wsfy-numpy": 12.9,
        "wsfy-plain": 14.5, "ours": 0.066, "ours-numpy": 0.053, "ours-w2": 0.065}
    assert figures[("idle", "pss_per")]["ours"] == 35.8 * 1024  # bytes, as in a report
    assert "direct" not in figures[("idle", "pss_per")]
    assert len(figures) == 8
