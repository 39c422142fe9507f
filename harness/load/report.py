"""``devai-harness report RUN_DIR [RUN_DIR...]``: JSON, CSV, JUnit and one self-contained HTML page with plots.

The records are read once (:mod:`harness.load.scan`), the plots drawn by :mod:`harness.load.plots`; here, the
checks a run must pass, the capacity steps, the cost, and the page. RunPod runs get the cost section;
OpenAI-compatible runs get TTFT, TPOT, ITL and tokens/s.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.load.cost import CostModel, what_if
from harness.load.lag import TRUSTED_LAG_MS
from harness.load.metrics import PhaseStats, percentiles
from harness.load.plots import plots
from harness.load.records import Contributor, record_files
from harness.load.scan import OPENAI_LABELS, RUNPOD_LABELS, RunData, scan
from harness.reporting.files import write_json, write_text
from harness.reporting.html import checks_html, fmt, render_page, table
from harness.reporting.junit import JUnitCase, write_junit

__all__ = ["build_report", "load_sections", "make_report", "ordering_checks", "report_data", "report_lines"]

_MIN_GAP_S = 0.02


# --- verdicts ------------------------------------------------------------------------------


def ordering_checks(summary: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Cold and warm slower than hot by median e2e — by a margin a reader would call a difference (at least 20 ms
    and 5%: a 1 ms gap is not evidence) — every label confirmed, no unexpected errors. Cold against warm is
    reported, not judged: with FlashBoot a restart soon after a scale-down can beat a warm pickup (RunPod's too)."""
    checks = []
    med = {p: (summary.get(p, {}).get("e2e_s") or {}).get("p50") for p in ("cold", "warm", "hot")}
    if med["hot"] is not None and (med["cold"] is not None or med["warm"] is not None):
        hot = float(med["hot"])
        slower = {p: float(v) for p, v in med.items() if p != "hot" and v is not None}
        ok = all(_apart(v, hot) for v in slower.values())
        detail = ", ".join(f"{p} {v * 1000:.0f} ms" for p, v in med.items() if v is not None)
        if not ok:
            detail += "; not distinguishable from hot: medians must differ by at least 20 ms and 5%"
        if len(slower) == 2 and slower["cold"] < slower["warm"]:
            detail += "; cold beat warm (a FlashBoot restart soon after a scale-down is faster than a warm pickup)"
        checks.append(("cold and warm slower than hot (median e2e)", ok, detail))
    for phase, s in summary.items():
        if phase in ("cold", "warm", "hot"):
            bad, confirmed = s["mislabelled"], s["confirmed"]
            # None confirmed is no evidence either way (every request failed, or no health was seen): not a pass.
            said = f"{confirmed}/{s['requests']} confirmed" + (f"; {bad[0]}" if bad else "")
            if not confirmed and not bad:
                said += ": nothing confirmed the label (no request of the phase had health and delayTime to judge by)"
            checks.append((f"{phase}: every label confirmed", not bad and confirmed > 0, said))
        errors = s["errors"]
        detail = "0"
        if errors:
            cause = next(iter(errors))
            said = s["error_messages"].get(cause)
            detail = json.dumps(errors) + (f"; {cause}: {said}" if said else "")
        checks.append((f"{phase}: no errors", not errors, detail))
        if s.get("anomalies"):
            said = "; ".join(f"{n} x {a}" for a, n in s["anomalies"].items())
            checks.append((f"{phase}: the endpoint's numbers are numbers", False, said))
    return checks


def _apart(larger: float, smaller: float) -> bool:
    return larger - smaller >= max(_MIN_GAP_S, 0.05 * larger)


def capacity_rows(phases: dict[str, PhaseStats], slo_p95_s: float) -> list[dict[str, Any]]:
    rows = []
    for name, s in phases.items():
        if s.label not in ("capacity", "arrivals"):
            continue
        span = (s.last_end - s.first_start) or 1e-9
        p95 = percentiles(s.e2e)["p95"]
        rows.append(
            {
                "step": name,
                "load": s.load,
                "requests": s.requests,
                "errors": s.requests - s.ok,
                "throughput_per_s": s.ok / span,
                "goodput_per_s": sum(v <= slo_p95_s for v in s.e2e) / span,
                "p95_s": p95,
                "within_slo": p95 is not None and p95 <= slo_p95_s and s.ok == s.requests,
            }
        )
    return rows


def _cost(summary: dict[str, Any], data: RunData, price: float, idle: float, rate: float | None) -> dict[str, Any]:
    runpod = {p: s for p, s in summary.items() if s["label"] in RUNPOD_LABELS}
    base = runpod.get("hot") or next(iter(runpod.values()))
    exec_ms = base["execution_ms"]["p50"] or 0
    cold = (runpod.get("cold") or {}).get("delay_ms", {}).get("p50")
    hot = (runpod.get("hot") or {}).get("delay_ms", {}).get("p50") or 0
    span = (max(data.starts) - min(data.starts)) or 1.0
    model = CostModel(
        execution_s=exec_ms / 1000,
        cold_start_s=max(0.0, ((cold or hot) - hot) / 1000),
        price_per_hour=price,
        rate_per_s=rate or data.records / span,
        idle_timeout_s=idle,
    )
    return {
        "assumptions": "Poisson arrivals, one worker's idle tail per request; see harness/load/cost.py",
        "execution_s": model.execution_s,
        "cold_start_s": model.cold_start_s,
        "price_per_hour": price,
        "rate_per_s": model.rate_per_s,
        "idle_timeout_s": idle,
        "billed_s_per_request": model.billed_s_per_request,
        "dollars_per_request": model.dollars_per_request,
        "dollars_per_month": model.dollars_per_month,
        "what_if": what_if(model),
        "measured_execution": exec_ms > 0,
    }


# --- the report ----------------------------------------------------------------------------


CLOCK_SKEW_S = 0.5  # start times of hosts further apart than this are flagged (durations are per host: unaffected)


def process_checks(data: RunData) -> list[tuple[str, bool, str]]:
    """Distributed runs: nothing silently missing (a process killed mid-run, its requests in flight), and start
    times that line up across hosts."""
    procs = data.contributors
    torn = [c for c in procs if c.torn]
    checks: list[tuple[str, bool, str]] = []
    if torn:
        said = "; ".join(f"{c.host} pid {c.process}: {c.torn} torn line at the end (a writer was killed)" for c in torn)
        checks.append(("every record line is whole", False, said + "; the rest of the run is reported"))
    if not procs or all(c.ended is None for c in procs):
        return checks  # records from before process files: nothing more to judge
    killed = [c for c in procs if c.ended is False]
    lost = sum(c.lost for c in procs)
    detail = "; ".join(c.describe() for c in procs)
    if killed:
        ok, said = False, f"{len(killed)} of {len(procs)} process(es) stopped without closing their records: {detail}"
    else:
        ok = True
        cut = sum(s.cut for s in data.phases.values())
        said = f"{len(procs)} process(es) closed their records; {lost + cut} request(s) cut off when the run stopped"
    checks.append(("every load process finished its records", ok, said))
    skewed = [c for c in procs if c.clock_offset_s is not None and abs(c.clock_offset_s) > CLOCK_SKEW_S]
    if any(c.clock_offset_s is not None for c in procs):
        off = ", ".join(f"{c.host}/{c.process} {c.clock_offset_s:+.3f} s" for c in skewed)
        checks.append(
            (
                f"load hosts' clocks within {CLOCK_SKEW_S:g} s of the master's",
                not skewed,
                f"skewed: {off} (start times shift by that much; durations do not)" if skewed else "all within",
            )
        )
    checks.extend(_lag_checks(procs))
    return checks


def _lag_checks(procs: list[Contributor]) -> list[tuple[str, bool, str]]:
    """Timings are only as good as the load generator's own punctuality (harness.load.lag)."""
    lags = {
        (c.host, c.process): c.lag for c in procs if c.lag and c.lag.get("p99_ms") is not None and not _packet_timed(c)
    }
    timed = [c for c in procs if _packet_timed(c)]
    checks: list[tuple[str, bool, str]] = []
    if timed:
        stamped = sum(int((c.timing or {}).get("stamped", 0)) for c in timed)
        p99 = max((float(c.lag["p99_ms"]) for c in timed if c.lag and c.lag.get("p99_ms") is not None), default=0)
        said = f"{len(timed)} process(es) timed by kernel packet timestamps ({stamped} times, none from their own clock"
        said += f"): their scheduling lag (p99 {p99:g} ms) does not move their numbers"
        checks.append(("request times come from packet timestamps", True, said))
    if not lags:
        return checks
    late = [k for k, lag in lags.items() if float(lag["p99_ms"]) > TRUSTED_LAG_MS]
    (host, pid), worst = max(lags.items(), key=lambda kv: float(kv[1]["p99_ms"]))
    said = f"scheduling lag p99 {worst['p99_ms']:g} ms, max {worst['max_ms']:g} ms ({host}/{pid})"
    if late:
        said += (
            f": its timings may be late by that much — the load generator was starved of CPU (give it cores of its "
            f"own with taskset, or fewer users per process, or time streams by packets with --packet-clock); "
            f"{len(late)} of {len(lags)} process(es) over {TRUSTED_LAG_MS:g} ms"
        )
    return [*checks, (f"the load generator kept up (scheduling lag p99 <= {TRUSTED_LAG_MS:g} ms)", not late, said)]


def _packet_timed(c: Contributor) -> bool:
    """Every time this process reported came from packets: none from its own clock, no packet lost."""
    t = c.timing or {}
    return t.get("source") == "packets" and not t.get("fallbacks") and not t.get("dropped") and bool(t.get("stamped"))


def build_report(run_dirs: str | Path | Sequence[str | Path], **options: Any) -> dict[str, Path]:
    """The report's files (json, csv, html, junit) from the records of ``run_dirs``; ``options`` are
    :func:`make_report`'s."""
    return make_report(run_dirs, **options)[1]


def make_report(
    run_dirs: str | Path | Sequence[str | Path],
    *,
    out_dir: str | Path | None = None,
    price_per_hour: float = 2.49,
    idle_timeout_s: float = 5.0,
    rate_per_s: float | None = None,
    slo_p95_s: float = 10.0,
    title: str | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The report (what report.json holds) and the files it was written to."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not record_files(dirs):  # checked before anything is written
        raise ConfigError(f"{', '.join(map(str, dirs))}: no records-*.jsonl files (run a locustfile with --run-dir)")
    out = Path(out_dir or dirs[0])
    paths = {
        "json": out / "report.json",
        "csv": out / "records.csv",
        "html": out / "report.html",
        "junit": out / "junit.xml",
    }
    data = scan(dirs, paths["csv"])
    report = report_data(data, dirs, price_per_hour, idle_timeout_s, rate_per_s, slo_p95_s)
    report["title"] = title or f"devai-harness load report: {', '.join(Path(d).name for d in dirs)}"
    write_json(paths["json"], report)
    write_junit(
        paths["junit"],
        "devai-harness load",
        [JUnitCase("load", c["name"], failure=None if c["ok"] else c["detail"]) for c in report["checks"]],
    )
    sections = load_sections(report, plots(data, report["capacity"]))
    write_text(paths["html"], render_page(report["title"], _intro(report), sections))
    return report, paths


def report_data(
    data: RunData,
    dirs: Iterable[str | Path],
    price: float,
    idle: float,
    rate: float | None,
    slo: float,
) -> dict[str, Any]:
    summary = {p: s.summary() for p, s in data.phases.items()}
    capacity = capacity_rows(data.phases, slo)
    sustainable = [c for c in capacity if c["within_slo"]]
    runpod = any(label in RUNPOD_LABELS for label in data.labels)
    return {
        "run_dirs": [str(d) for d in dirs],
        "records": data.records,
        "sources": dict(data.sources),
        "processes": len(data.sources),
        "phases": summary,
        "capacity": capacity,
        "max_sustainable": sustainable[-1] if sustainable else None,
        "cost": _cost(summary, data, price, idle, rate) if runpod else None,
        "contributors": [asdict(c) for c in data.contributors],
        "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in ordering_checks(summary) + process_checks(data)],
    }


def report_lines(report: dict[str, Any]) -> list[str]:
    """What the terminal shows: checks, OpenAI timing per phase, capacity and cost where they apply."""
    lines = [f"{'PASS' if c['ok'] else 'FAIL'}  {c['name']}: {c['detail']}" for c in report["checks"]]
    for phase, s in report["phases"].items():
        if s["label"] in OPENAI_LABELS:
            lines.append(f"{phase}: " + _openai_line(s))
    if report.get("max_sustainable"):
        m = report["max_sustainable"]
        lines.append(
            f"capacity: max sustainable step {m['step']} ({m['throughput_per_s']:.1f} req/s, goodput "
            f"{m['goodput_per_s']:.1f}/s, p95 {m['p95_s']:.2f} s)"
        )
    c = report.get("cost")
    if c:
        lines.append(
            f"cost: {c['billed_s_per_request']:.2f} billed GPU-s/request, ${c['dollars_per_request']:.5f}/request, "
            f"${c['dollars_per_month']:,.2f}/month at {c['rate_per_s']:.3f} req/s and ${c['price_per_hour']}/h"
            + ("" if c["measured_execution"] else " (no executionTime was measured: execution counted as 0)")
        )
    return lines


def _ms(p: dict[str, Any], q: str = "p50") -> str:
    v = p.get(q)
    return "-" if v is None else f"{v * 1000:.1f}"


def _requests(s: dict[str, Any]) -> str:
    """Finished requests, and those the run's end cut (a stream that had not ended at ``-t``)."""
    cut = s.get("cut") or 0
    return f"{s['requests']} (+{cut} cut at the end)" if cut else str(s["requests"])


def _openai_line(s: dict[str, Any]) -> str:
    tps = s["output_tokens_per_s"]["p50"]
    return (
        f"{_requests(s)} requests, errors {json.dumps(s['errors'])}; e2e p50 {_ms(s['e2e_s'])} ms, "
        f"TTFT p50/p95 {_ms(s['ttft_s'])}/{_ms(s['ttft_s'], 'p95')} ms, TPOT p50 {_ms(s['tpot_vllm_s'])} ms, "
        f"ITL (GuideLLM) p50 {_ms(s['itl_guidellm_s'])} ms, output tokens/s p50 {'-' if tps is None else f'{tps:.1f}'}"
    )


def _intro(report: dict[str, Any]) -> str:
    sources = ", ".join(f"{k}: {v}" for k, v in sorted(report["sources"].items()))
    return (
        f"{report['records']:,} requests from {report['processes']} process(es) ({html.escape(sources)}); "
        f"{html.escape(', '.join(report['run_dirs']))}. Timings are the harness's exact records (locust's histograms "
        'bucket them). TPOT follows vLLM bench; GuideLLM calls its (last-first token)/(n-1) "ITL"; AIPerf\'s ICL '
        "is every chunk gap (report.json has all)."
    )


def load_sections(report: dict[str, Any], images: dict[str, str]) -> list[tuple[str, str]]:
    sections = [("Checks", checks_html(report["checks"]))]
    phases = report["phases"]
    runpod_rows = [
        [p, _requests(s), s["confirmed"], json.dumps(s["errors"])]
        + [
            fmt(s[m][q], k)
            for m, k in (("e2e_s", 1000), ("delay_ms", 1), ("execution_ms", 1))
            for q in ("p50", "p95", "p99")
        ]
        for p, s in phases.items()
        if s["label"] not in OPENAI_LABELS
    ]
    if runpod_rows:
        head = ["phase", "requests", "confirmed", "errors"] + [
            f"{m} {q}" for m in ("e2e ms", "delay ms", "exec ms") for q in ("p50", "p95", "p99")
        ]
        sections.append(("Per phase (RunPod)", table(head, runpod_rows)))
    openai_rows = [
        [p, _requests(s), json.dumps(s["errors"])]
        + [
            fmt(s[m][q], k)
            for m, k in (("e2e_s", 1000), ("ttft_s", 1000), ("tpot_vllm_s", 1000), ("itl_guidellm_s", 1000))
            for q in ("p50", "p95", "p99")
        ]
        + [fmt(s["output_tokens_per_s"]["p50"])]
        for p, s in phases.items()
        if s["label"] in OPENAI_LABELS
    ]
    if openai_rows:
        head = ["phase", "requests", "errors"] + [
            f"{m} {q}" for m in ("e2e ms", "TTFT ms", "TPOT ms", "ITL ms") for q in ("p50", "p95", "p99")
        ]
        sections.append(("Per phase (OpenAI-compatible)", table([*head, "tokens/s p50"], openai_rows)))
    titles = {"latency": "Latency per phase", "timeline": "Timeline", "capacity": "Capacity curve"}
    sections.extend((titles.get(k, k), f"<img alt='{html.escape(k)} plot' src='{v}'>") for k, v in images.items())
    if report.get("capacity"):
        cap = [
            [
                c["step"],
                f"{c['load']:g}",
                c["requests"],
                c["errors"],
                f"{c['throughput_per_s']:.2f}",
                f"{c['goodput_per_s']:.2f}",
                fmt(c["p95_s"], 1000),
                "yes" if c["within_slo"] else "no",
            ]
            for c in report["capacity"]
        ]
        head = ["step", "load", "requests", "errors", "req/s", "goodput/s", "p95 ms", "within SLO"]
        sections.append(("Capacity", table(head, cap)))
    if report.get("cost"):
        sections.append(("Cost", _cost_html(report["cost"])))
    return sections


def _cost_html(c: dict[str, Any]) -> str:
    e = html.escape
    rows = [
        [
            w["idle_timeout_s"],
            w["max_workers"],
            "over capacity" if w["over_capacity"] else "",
            f"{w['cold_fraction']:.2%}",
            w["billed_s_per_request"],
            f"${w['dollars_per_request']:.6f}",
            f"${w['dollars_per_month']:,.2f}",
        ]
        for w in c["what_if"]
    ]
    note = "" if c["measured_execution"] else " (no executionTime was measured: execution counted as 0)"
    text = (
        f"<p>Measured execution {c['execution_s']:.3f} s{note}, cold start {c['cold_start_s']:.2f} s, traffic "
        f"{c['rate_per_s']:.3f} req/s, GPU ${c['price_per_hour']}/h, idle timeout {c['idle_timeout_s']} s: "
        f"<b>{c['billed_s_per_request']:.2f} billed GPU-seconds per request, ${c['dollars_per_request']:.5f} per "
        f"request, ${c['dollars_per_month']:,.2f} per month</b>. Model: {e(c['assumptions'])}.</p>"
    )
    head = ["idle timeout s", "max workers", "", "cold share", "billed s/request", "$/request", "$/month"]
    return text + table(head, rows)
