"""Bar chart of a scripts/bench report: one panel per scenario, one bar per peer.

Usage: python chart.py REPORT.json OUT.png   (runs in the bench's own venv, with matplotlib)
"""
import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [  # title, scenario, key, scale
    ("client→target 64 KiB (MiB/s)", "c2t", "value", 1),
    ("target→client 64 KiB (MiB/s)", "t2c", "value", 1),
    ("1 KiB msgs/s (thousands)", "msgs1k", "value", 1e-3),
    ("32 B echo p50 (µs, lower better)", "echo", "p50", 1),
    ("32 B echo p99 (µs, lower better)", "echo", "p99", 1),
    ("connections/s", "conns", "value", 1),
    ("16 MiB message (s, lower better)", "big", "value", 1),
    ("idle: PSS per connection at 1,000 (KiB)", None, "pss_per", 1 / 1024),
]
LABELS = {"direct": "direct", "socat": "socat", "wsfy-numpy": "wsfy+np",
          "wsfy-plain": "wsfy", "ours": "ours", "ours-numpy": "ours[np]", "ours-w2": "ours w2",
          "ours-v": "ours -v", "ours-traffic": "ours traffic"}
COLORS = {"direct": "#999999", "socat": "#666666", "wsfy-numpy": "#d62728",
          "wsfy-plain": "#ff9896", "ours": "#1f77b4", "ours-numpy": "#17becf",
          "ours-w2": "#2ca02c", "ours-v": "#9467bd", "ours-traffic": "#8c564b"}


def main() -> None:
    rep = json.load(open(sys.argv[1]))
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, (title, scen, key, scale) in zip(axes.flat, PANELS):
        names, vals, colors = [], [], []
        for p in rep["peers"]:
            if scen is None:
                r = rep["idle"].get(p, {}).get("1000")
                v = r[key] if r else None
            else:
                xs = [r[key] for r in rep["results"][p].get(scen, [])
                      if isinstance(r.get(key), (int, float)) and not r.get("timedOut")]
                v = statistics.median(xs) if xs else None
            if v is None:
                continue
            names.append(LABELS.get(p, p))
            vals.append(v * scale)
            colors.append(COLORS.get(p, "#bcbd22"))
        bars = ax.bar(names, vals, color=colors)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=8, rotation=30)
    fig.suptitle(f"scripts/bench, {rep['machine']['date']}: medians of {rep['repeats']}")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=80)


main()
