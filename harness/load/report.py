"""``devai-harness report RUN_DIR``: JSON, CSV, JUnit and one self-contained HTML page with plots.

Plots (matplotlib, Agg, embedded as PNG data URIs so the page is one file): latency per phase, a timeline
of requests with the ready-worker count seen before each, and the capacity curve when there is one.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.conformance.results import JUnitCase, write_junit
from harness.load.cost import CostModel, what_if
from harness.load.metrics import summarize
from harness.load.records import LoadRecord, load_records

__all__ = ["build_report", "ordering_checks"]

COLORS = {"cold": "#1f77b4", "warm": "#ff7f0e", "hot": "#2ca02c", "stream": "#9467bd"}


def ordering_checks(summary: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """cold > warm > hot by median e2e, every label confirmed, no unexpected errors."""
    checks = []
    med = {p: (summary.get(p, {}).get("e2e_s") or {}).get("p50") for p in ("cold", "warm", "hot")}
    if all(v is not None for v in med.values()):
        ok = med["cold"] > med["warm"] > med["hot"]  # type: ignore[operator]
        checks.append(
            (
                "cold > warm > hot (median e2e)",
                ok,
                ", ".join(f"{p} {v * 1000:.0f} ms" for p, v in med.items() if v is not None),
            )
        )
    for phase, s in summary.items():
        if phase in ("cold", "warm", "hot"):
            bad = s["mislabelled"]
            checks.append(
                (
                    f"{phase}: every label confirmed",
                    not bad,
                    f"{s['confirmed']}/{s['requests']} confirmed" + (f"; {bad[0]}" if bad else ""),
                )
            )
        checks.append((f"{phase}: no errors", not s["errors"], json.dumps(s["errors"]) if s["errors"] else "0"))
    return checks


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plots(records: list[LoadRecord], capacity: list[dict[str, Any]]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    ok = [r for r in records if r.status == "ok" and r.e2e_s is not None]
    phases = list(dict.fromkeys(r.phase for r in ok))
    if ok:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        data = [[(r.e2e_s or 0) * 1000 for r in ok if r.phase == p] for p in phases]
        ax.boxplot(data, tick_labels=phases, showfliers=True)
        for i, p in enumerate(phases, 1):
            ys = [(r.e2e_s or 0) * 1000 for r in ok if r.phase == p]
            ax.scatter([i] * len(ys), ys, s=12, alpha=0.6, color=COLORS.get(p, "#555"))
        ax.set_ylabel("end-to-end ms")
        ax.set_yscale("symlog", linthresh=10)
        ax.set_title("Latency per phase")
        out["latency"] = _png(fig)

        t0 = min(r.start_unix for r in records)
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for r in records:
            x, y = r.start_unix - t0, r.seq if r.label != "latency" else 0
            color = COLORS.get(r.phase, "#555")
            ax.hlines(y, x, x + (r.e2e_s or 0), color=color, linewidth=6 if r.label == "latency" else 2)
            ax.plot([x], [y], marker="|", markersize=14, color=color)  # short requests stay visible
        shown = [p for p in COLORS if any(r.phase == p for r in records)]
        for phase in shown:
            ax.plot([], [], color=COLORS[phase], linewidth=6, label=phase)
        if shown:
            ax.legend(loc="upper left", fontsize=8)
        ax2 = ax.twinx()
        pts = sorted(
            (r.start_unix - t0, (r.workers_before.get("idle") or 0) + (r.workers_before.get("running") or 0))
            for r in records
            if r.workers_before
        )
        if pts:
            ax2.step(
                [p[0] for p in pts],
                [p[1] for p in pts],
                where="post",
                color="black",
                linestyle="--",
                label="ready workers before the request",
            )
            ax2.set_ylabel("ready workers")
            ax2.legend(loc="upper right", fontsize=8)
        ax.set_xlabel("seconds since start")
        ax.set_yticks([])
        ax.set_title("Timeline of requests (colour = phase)")
        out["timeline"] = _png(fig)
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
        out["capacity"] = _png(fig)
    return out


def _capacity(records: list[LoadRecord], slo_p95_s: float) -> list[dict[str, Any]]:
    from harness.load.metrics import percentiles

    rows = []
    for phase in dict.fromkeys(r.phase for r in records if r.label == "capacity"):
        rs = [r for r in records if r.phase == phase]
        ok = [r for r in rs if r.status == "ok" and r.e2e_s is not None]
        span = max(r.start_unix + (r.e2e_s or 0) for r in rs) - min(r.start_unix for r in rs) or 1e-9
        p95 = percentiles(r.e2e_s for r in ok)["p95"]
        rows.append(
            {
                "step": phase,
                "load": rs[0].concurrency or rs[0].rate or 0,
                "requests": len(rs),
                "errors": len(rs) - len(ok),
                "throughput_per_s": len(ok) / span,
                "goodput_per_s": sum((r.e2e_s or 0) <= slo_p95_s for r in ok) / span,
                "p95_s": p95,
                "within_slo": p95 is not None and p95 <= slo_p95_s and len(ok) == len(rs),
            }
        )
    return rows


def build_report(
    run_dir: str | Path,
    *,
    price_per_hour: float = 2.49,
    idle_timeout_s: float = 5.0,
    rate_per_s: float | None = None,
    slo_p95_s: float = 10.0,
) -> dict[str, Path]:
    run = Path(run_dir)
    records = load_records(run)
    if not records:
        from harness.core.errors import ConfigError

        raise ConfigError(f"{run}: no records-*.jsonl files (run a locustfile with --run-dir {run})")
    summary = summarize(records)
    capacity = _capacity(records, slo_p95_s)
    sustainable = [c for c in capacity if c["within_slo"]]
    exec_s = (summary.get("hot") or next(iter(summary.values())))["execution_ms"]["p50"] or 0
    cold = (summary.get("cold") or {}).get("delay_ms", {}).get("p50")
    hot = (summary.get("hot") or {}).get("delay_ms", {}).get("p50") or 0
    span = max(r.start_unix for r in records) - min(r.start_unix for r in records) or 1.0
    cost = CostModel(
        execution_s=exec_s / 1000,
        cold_start_s=max(0.0, ((cold or hot) - hot) / 1000),
        price_per_hour=price_per_hour,
        rate_per_s=rate_per_s or len(records) / span,
        idle_timeout_s=idle_timeout_s,
    )
    checks = ordering_checks(summary)
    data = {
        "run_dir": str(run),
        "records": len(records),
        "processes": sorted({r.process for r in records}),
        "phases": summary,
        "capacity": capacity,
        "max_sustainable": sustainable[-1] if sustainable else None,
        "cost": {
            "assumptions": "Poisson arrivals, one worker's idle tail per request; see harness/load/cost.py",
            "execution_s": cost.execution_s,
            "cold_start_s": cost.cold_start_s,
            "price_per_hour": price_per_hour,
            "rate_per_s": cost.rate_per_s,
            "idle_timeout_s": idle_timeout_s,
            "billed_s_per_request": cost.billed_s_per_request,
            "dollars_per_request": cost.dollars_per_request,
            "dollars_per_month": cost.dollars_per_month,
            "what_if": what_if(cost),
        },
        "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks],
    }
    paths = {
        "json": run / "report.json",
        "csv": run / "records.csv",
        "html": run / "report.html",
        "junit": run / "junit.xml",
    }
    paths["json"].write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        fields = list(asdict(records[0]))
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in asdict(r).items()})
    write_junit(
        paths["junit"],
        "devai-harness load",
        [JUnitCase("load", name, failure=None if ok else detail) for name, ok, detail in checks],
    )
    paths["html"].write_text(_html(data, _plots(records, capacity)), encoding="utf-8")
    return paths


def _fmt(v: Any, scale: float = 1.0, unit: str = "") -> str:
    return "-" if v is None else f"{v * scale:.1f}{unit}"


def _html(data: dict[str, Any], plots: dict[str, str]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(p)}</td><td>{s['requests']}</td><td>{s['confirmed']}</td><td>{e(json.dumps(s['errors']))}</td>"
        + "".join(
            f"<td>{_fmt(s[m][q], k)}</td>"
            for m, k in (("e2e_s", 1000), ("delay_ms", 1), ("execution_ms", 1), ("ttft_s", 1000), ("tpot_vllm_s", 1000))
            for q in ("p50", "p95", "p99")
        )
        + "</tr>"
        for p, s in data["phases"].items()
    )
    head = "".join(
        f"<th>{m} {q}</th>"
        for m in ("e2e ms", "delay ms", "exec ms", "TTFT ms", "TPOT (vLLM) ms")
        for q in ("p50", "p95", "p99")
    )
    checks = "".join(
        f"<li class='{'ok' if c['ok'] else 'bad'}'>{'PASS' if c['ok'] else 'FAIL'} {e(c['name'])}: "
        f"{e(c['detail'])}</li>"
        for c in data["checks"]
    )
    c = data["cost"]
    whatif = "".join(
        f"<tr><td>{w['idle_timeout_s']}</td><td>{w['max_workers']}</td>"
        f"<td>{'over capacity' if w['over_capacity'] else ''}</td><td>{w['cold_fraction']:.2%}</td>"
        f"<td>{w['billed_s_per_request']}</td><td>${w['dollars_per_request']:.6f}</td>"
        f"<td>${w['dollars_per_month']:,.2f}</td></tr>"
        for w in c["what_if"]
    )
    imgs = "".join(f"<h2>{e(k.title())}</h2><img alt='{e(k)} plot' src='{v}'>" for k, v in plots.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>devai-harness load report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}.ok{{color:#080}}.bad{{color:#b00}}
img{{max-width:100%}}</style></head><body>
<h1>Load report</h1><p>{data["records"]} requests from {len(data["processes"])} process(es); {e(data["run_dir"])}.
Timings are the harness's exact records (locust's histograms bucket them). TPOT follows vLLM bench; GuideLLM calls
its (last-first token)/(n-1) "ITL"; AIPerf's ICL is every chunk gap (report.json has all).</p>
<h2>Checks</h2><ul>{checks}</ul>
<h2>Per phase</h2><table><tr><th>phase</th><th>requests</th><th>confirmed</th><th>errors</th>{head}</tr>{rows}</table>
{imgs}
<h2>Cost</h2><p>Measured execution {c["execution_s"]:.3f} s, cold start {c["cold_start_s"]:.2f} s, traffic
{c["rate_per_s"]:.3f} req/s, GPU ${c["price_per_hour"]}/h, idle timeout {c["idle_timeout_s"]} s:
<b>{c["billed_s_per_request"]:.2f} billed GPU-seconds per request, ${c["dollars_per_request"]:.5f} per request,
${c["dollars_per_month"]:,.2f} per month</b>. Model: {e(c["assumptions"])}.</p>
<table><tr><th>idle timeout s</th><th>max workers</th><th></th><th>cold share</th><th>billed s/request</th>
<th>$/request</th><th>$/month</th></tr>{whatif}</table></body></html>"""
