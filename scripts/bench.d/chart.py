"""Bar chart of a scripts/bench report: one panel per scenario, one bar per peer.

Usage (runs in the bench's own venv, with matplotlib):
    python chart.py REPORT.json OUT.png       a report as scripts/bench --json writes it
    python chart.py --rst RESULTS.rst OUT.png  the medians of a report's text tables, e.g.
                                               docs/benchmarks.rst (raw results not kept)

Readable whatever the spread (#16 Operations 2): horizontal bars, so value labels sit at
the bar ends and never overlap; plain numbers (``2,805``, ``0.0056``), never ``2.8e+03``;
a log scale in the panels whose peers differ by orders of magnitude (websockify's 16 MiB
message takes 250 times ours), so that no bar is invisible.
"""
import json
import math
import re
import statistics
import sys
from typing import Any

PANELS = [  # title, scenario (None: idle), result key, scale
    ("client→target 64 KiB (MiB/s)", "c2t", "value", 1),
    ("target→client 64 KiB (MiB/s)", "t2c", "value", 1),
    ("1 KiB messages/s", "msgs1k", "value", 1),
    ("32 B echo p50 (µs, lower is better)", "echo", "p50", 1),
    ("32 B echo p99 (µs, lower is better)", "echo", "p99", 1),
    ("connections/s", "conns", "value", 1),
    ("one 16 MiB message (s, lower is better)", "big", "value", 1),
    ("idle: PSS per connection at 1,000 (KiB)", None, "pss_per", 1 / 1024),
]
#: A panel whose largest bar is this many times its smallest gets a log scale.
LOG_SPREAD = 20
LABELS = {"direct": "direct", "socat": "socat", "wsfy-numpy": "websockify+numpy",
          "wsfy-plain": "websockify, no numpy", "ours": "ours", "ours-numpy": "ours[numpy]",
          "ours-w2": "ours --workers 2", "ours-v": "ours -v", "ours-traffic": "ours --traffic",
          "chain": "client→ours (TCP)"}
COLORS = {"direct": "#999999", "socat": "#666666", "wsfy-numpy": "#d62728",
          "wsfy-plain": "#ff9896", "ours": "#1f77b4", "ours-numpy": "#17becf",
          "ours-w2": "#2ca02c", "ours-v": "#9467bd", "ours-traffic": "#8c564b",
          "chain": "#aec7e8"}
#: The peers' names in scripts/bench's text tables (its LABELS).
TABLE_NAMES = {"direct": "direct", "socat": "socat", "websockify+numpy": "wsfy-numpy",
               "websockify (no numpy)": "wsfy-plain", "ours": "ours",
               "ours[numpy]": "ours-numpy", "ours --workers 2": "ours-w2",
               "ours -v": "ours-v", "ours --traffic": "ours-traffic",
               "client→ours (TCP)": "chain"}
#: The scenarios' rows in scripts/bench's medians table (its METRICS labels).
TABLE_ROWS = {"client→target 64 KiB msgs": ("c2t", "value"),
              "target→client 64 KiB reads": ("t2c", "value"),
              "1 KiB msgs client→target": ("msgs1k", "value"),
              "32 B echo p50": ("echo", "p50"), "32 B echo p99": ("echo", "p99"),
              "connections/s (8 parallel)": ("conns", "value"),
              "one 16 MiB message": ("big", "value")}

Figures = dict[tuple[str, str], dict[str, float]]  # (scenario, key) -> peer -> median


def plain(value: float) -> str:
    """At most three significant digits, thousands separated, never an exponent, no
    trailing zeros (``2,805``, ``95.5``, ``36``, ``0.0056``)."""
    if value == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def from_report(rep: dict) -> tuple[list[str], Figures, str]:
    """Peers, medians and the title of a scripts/bench JSON report."""
    figures: Figures = {}
    for _title, scen, key, _scale in PANELS:
        row = figures.setdefault((scen or "idle", key), {})
        for p in rep["peers"]:
            if scen is None:
                r = rep["idle"].get(p, {}).get("1000")
                if r:
                    row[p] = r[key]
                continue
            xs = [r[key] for r in rep["results"][p].get(scen, [])
                  if isinstance(r.get(key), (int, float)) and not r.get("timedOut")]
            if xs:
                row[p] = statistics.median(xs)
    title = f"scripts/bench, {rep['machine']['date']}: medians of {rep['repeats']}"
    return rep["peers"], figures, title


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def _number(cell: str) -> float:
    return float(cell.split()[0].replace(",", ""))


def from_rst(text: str) -> tuple[list[str], Figures, str]:
    """The same from the first medians and idle tables of a rendered report."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if _cells(line)[0] == "scenario")
    peers = [TABLE_NAMES[name] for name in _cells(lines[head])[1:]]
    figures: Figures = {}
    for line in lines[head + 2:]:
        if line.strip().startswith("="):
            break
        cells = _cells(line)
        label = re.sub(r" \([^)]*\)$", "", cells[0])  # drop the unit
        if label not in TABLE_ROWS:  # a row the chart has no panel for (load, CPU)
            continue
        figures[TABLE_ROWS[label]] = {p: _number(c) for p, c in zip(peers, cells[1:])
                                      if c.strip() not in ("", "—")}
    idle = next(i for i, line in enumerate(lines) if _cells(line)[:2] == ["peer", "asked"])
    column = _cells(lines[idle]).index("PSS/conn KiB")
    figures[("idle", "pss_per")] = {}
    for line in lines[idle + 2:]:
        if line.strip().startswith("="):
            break
        cells = _cells(line)
        if cells[1] == "1000":
            figures[("idle", "pss_per")][TABLE_NAMES[cells[0]]] = _number(cells[column]) * 1024
    repeats = re.search(r"over (\d+) repeats", text)
    date = re.search(r"^\s*Machine: .*?(\d{4}-\d{2}-\d{2})\.\s*$", text, re.M)
    title = (f"scripts/bench, {date.group(1) if date else '?'}: medians of "
             f"{repeats.group(1) if repeats else '?'}")
    return peers, figures, title


def log_scale(values: list[float]) -> bool:
    """Whether a panel needs a log scale for its smallest bar to stay visible."""
    low, high = min(values), max(values)
    return low > 0 and high / low >= LOG_SPREAD


def draw(ax: Any, title: str, bars: list[tuple[str, float]]) -> None:
    """One panel: a horizontal bar per peer, top to bottom, labelled at its end."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    names = [LABELS.get(p, p) for p, _ in bars][::-1]
    values = [v for _, v in bars][::-1]
    colors = [COLORS.get(p, "#bcbd22") for p, _ in bars][::-1]
    drawn = ax.barh(names, values, color=colors)
    ax.bar_label(drawn, labels=[plain(v) for v in values], padding=3, fontsize=8)
    low, high = min(values), max(values)
    if log_scale(values):
        ax.set_xscale("log")
        ax.set_xlim(low / 3, high * 12)  # room for the labels on the right
        ax.xaxis.set_major_locator(LogLocator(base=10, numticks=12))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("log scale", fontsize=8)
    else:
        ax.set_xlim(0, high * 1.3)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # wide labels such as 200,000
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: plain(v)))
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)


def main(argv: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if argv[0] == "--rst":
        with open(argv[1], encoding="utf-8") as f:
            peers, figures, suptitle = from_rst(f.read())
        out = argv[2]
    else:
        with open(argv[0], encoding="utf-8") as f:
            peers, figures, suptitle = from_report(json.load(f))
        out = argv[1]
    fig, axes = plt.subplots(2, 4, figsize=(18, 7.5))
    for ax, (title, scen, key, scale) in zip(axes.flat, PANELS):
        row = figures.get((scen or "idle", key), {})
        bars = [(p, row[p] * scale) for p in peers if p in row]
        if bars:
            draw(ax, title, bars)
        else:
            ax.set_visible(False)
    fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(sys.argv[1:])
