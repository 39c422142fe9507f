"""The load report's plots, readable at any size: latency per phase (box + a sample of points, log scale), a
timeline of e2e percentile bands over time bins with the request rate (every request drawn only when there are
few), and the capacity curve. matplotlib is imported only when a report is drawn."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from harness.core.percentiles import percentiles
from harness.load.scan import RunData
from harness.reporting.html import png_data_uri

__all__ = ["COLORS", "plots"]

COLORS = {"cold": "#1f77b4", "warm": "#ff7f0e", "hot": "#2ca02c", "stream": "#9467bd", "chat": "#8c564b"}
_DRAW_ALL = 2000  # up to this many requests every one is drawn; beyond, percentile bands and a sample


def _sample(values: Sequence[float], k: int, rng: random.Random) -> list[float]:
    return list(values) if len(values) <= k else rng.sample(list(values), k)


def plots(data: RunData, capacity: list[dict[str, Any]]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    rng = random.Random(0)
    phases = [p for p, s in data.phases.items() if len(s.e2e)]
    if phases:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.boxplot([[v * 1000 for v in data.phases[p].e2e] for p in phases], tick_labels=phases, showfliers=False)
        for i, p in enumerate(phases, 1):
            ys = [v * 1000 for v in _sample(data.phases[p].e2e, 1500, rng)]
            xs = [i + rng.uniform(-0.15, 0.15) for _ in ys]
            ax.scatter(xs, ys, s=8, alpha=0.5, color=COLORS.get(p, "#555"))
        ax.set_ylabel("end-to-end ms (log)")
        ax.set_yscale("log")
        ax.set_title("Latency per phase (box: quartiles and 1.5 IQR; points: up to 1,500 requests per phase)")
        out["latency"] = png_data_uri(fig)
        out["timeline"] = _timeline(data, plt)
    if capacity:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        xs = [c["load"] for c in capacity]
        ax.plot(xs, [c["throughput_per_s"] for c in capacity], marker="o", label="throughput (req/s)")
        ax.plot(xs, [c["goodput_per_s"] for c in capacity], marker="s", label="goodput (req/s within SLO)")
        ax2 = ax.twinx()
        ax2.plot(xs, [(c["p95_s"] or 0) * 1000 for c in capacity], marker="^", color="red", label="p95 e2e ms")
        ax2.set_ylabel("p95 ms")
        ax.set_xlabel("users (closed loop) or arrivals/s (open loop)")
        ax.legend(loc="upper left", fontsize=8)
        ax2.legend(loc="lower right", fontsize=8)
        ax.set_title("Capacity curve")
        out["capacity"] = png_data_uri(fig)
    return out


def _timeline(data: RunData, plt: Any) -> str:
    t0 = min(data.starts)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.set_yscale("log")
    if data.records <= _DRAW_ALL:
        for phase in dict.fromkeys(data.phase_of):
            pts = [
                (s - t0, e * 1000)
                for s, e, p in zip(data.starts, data.e2e, data.phase_of, strict=True)
                if p == phase and not math.isnan(e)
            ]
            ax.scatter([x for x, _ in pts], [y for _, y in pts], s=14, color=COLORS.get(phase, "#555"), label=phase)
        ax.set_title("Every request: start time and end-to-end latency")
    else:
        bins = 120
        span = (max(data.starts) - t0) or 1.0
        buckets: list[list[float]] = [[] for _ in range(bins)]
        counts = [0] * bins
        for s, e in zip(data.starts, data.e2e, strict=True):
            b = min(bins - 1, int((s - t0) / span * bins))
            counts[b] += 1
            if not math.isnan(e):
                buckets[b].append(e * 1000)
        mids = [(i + 0.5) * span / bins for i in range(bins)]
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            ys = [percentiles(b)[f"p{q}"] if b else None for b in buckets]
            ax.plot([m for m, y in zip(mids, ys, strict=True) if y], [y for y in ys if y], style, label=f"p{q}")
        ax2 = ax.twinx()
        ax2.bar(mids, [c / (span / bins) for c in counts], width=span / bins, alpha=0.15, color="gray")
        ax2.set_ylabel("requests/s started")
        ax.set_title(f"{data.records:,} requests: e2e percentiles per time bin ({span / bins:.2f} s)")
    if data.ready:
        ax3 = ax.twinx()
        pts = sorted(data.ready)
        ax3.step([p[0] - t0 for p in pts], [p[1] for p in pts], where="post", color="black", linestyle="--")
        ax3.set_ylabel("ready workers before a request")
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("end-to-end ms (log)")
    ax.legend(loc="upper left", fontsize=8)
    return png_data_uri(fig)
