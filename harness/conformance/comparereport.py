"""A comparison's report: a terminal table, compare.json (every attempt, every row), and compare.html — one
self-contained page with the side-by-side tables and plots (pass rate per task with intervals, latency per
target)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.conformance.compare import Attempt, Comparison
from harness.conformance.verdicts import OVERALL, PairRow, TargetRow, pair_rows, target_rows
from harness.core.intervals import Interval
from harness.reporting.files import write_json, write_text
from harness.reporting.html import png_data_uri, render_page, table
from harness.reporting.tables import text_table

__all__ = ["comparison_lines", "summarize", "write_comparison"]


def _rate(i: Interval, passes: int) -> str:
    if i.n == 0:
        return "-"
    return f"{passes}/{i.n} {i.estimate:.0%} [{i.low:.0%}-{i.high:.0%}]"


def _signed(i: Interval) -> str:
    if i.n == 0 or math.isnan(i.estimate):
        return "-"
    return f"{i.estimate:+.2f} [{i.low:+.2f}, {i.high:+.2f}]"


def _s(v: float | None, scale: float = 1000, unit: str = "") -> str:
    return "-" if v is None else f"{v * scale:.0f}{unit}"


def _shift(i: Interval) -> str:
    if i.n == 0 or math.isnan(i.estimate):
        return "-"
    low = "-inf" if math.isinf(i.low) else f"{i.low * 1000:+.0f}"
    high = "inf" if math.isinf(i.high) else f"{i.high * 1000:+.0f}"
    return f"{i.estimate * 1000:+.0f} ms [{low}, {high}]"


def pass_table(rows: Sequence[TargetRow], names: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    tasks = list(dict.fromkeys(r.task for r in rows))
    cell = {(r.target, r.task): _rate(r.pass_rate, r.passes) for r in rows}
    return ["task", *names], [[t, *(cell.get((n, t), "-") for n in names)] for t in tasks]


def pairs_table(pairs: Sequence[PairRow]) -> tuple[list[str], list[list[str]]]:
    head = ["task (A vs B)", "A - B pass rate (95%)", "p", "verdict", "A - B e2e, median (95%)", "speed"]
    rows = []
    for p in pairs:
        rows.append([f"{p.task} ({p.a} vs {p.b})", _signed(p.pass_diff), f"{p.mcnemar_p:.3g}", p.verdict])
        rows[-1] += [_shift(p.e2e_shift), p.speed_verdict]
    return head, rows


def speed_table(rows: Sequence[TargetRow]) -> tuple[list[str], list[list[str]]]:
    head = ["target", "n", "errors", "TTFT ms p50/p90/p99", "e2e ms p50/p90/p99", "tok/s p50", "chars p50"]
    head += ["tokens p50", "prompt tokens p50", "cold share", "$ / passed task"]
    out = []
    for r in rows:
        if r.task != OVERALL:
            continue
        ttft = "/".join(_s(r.ttft_s[q]) for q in ("p50", "p90", "p99"))
        e2e = "/".join(_s(r.e2e_s[q]) for q in ("p50", "p90", "p99"))
        errors = ", ".join(f"{k} {v}" for k, v in r.errors.items()) or "0"
        cold = "n/a" if r.cold_share is None else f"{r.cold_share:.0%}"
        usd = "-" if r.usd_per_success is None else f"${r.usd_per_success:.5f}"
        tok = "-" if r.tokens_per_s_p50 is None else f"{r.tokens_per_s_p50:.0f}"
        out.append([r.target, str(r.n), errors, ttft, e2e, tok, _s(r.answer_chars_p50, 1), _s(r.output_tokens_p50, 1)])
        out[-1] += [_s(r.input_tokens_p50, 1), cold, usd]
    return head, out


def _notes(run: Comparison) -> list[str]:
    notes = []
    for t in run.targets:
        if t.excluded:
            notes.append(f"{t.name} EXCLUDED (not averaged into anything): {t.excluded}")
        if t.stopped:
            notes.append(
                f"{t.name} failed mid-run and {t.stopped}; its partial results are compared on what it answered"
            )
    for a in run.attempts:
        if a.warmup:
            what = f"{a.e2e_s:.2f} s" if a.e2e_s is not None else "-"
            said = a.error or "answered"
            notes.append(f"warm-up {a.target} [{a.form}] (kept out of the numbers): {said} in {what}")
    if run.interrupted:
        notes.append("INTERRUPTED: the numbers cover the attempts made before the stop")
    return notes


def overall_verdict(run: Comparison) -> str:
    if len(run.compared) < 2:
        return "NOT CHECKED: fewer than two healthy targets"
    if not run.measured:
        return "NOT CHECKED: nothing was measured"
    return "COMPARED"


def _design(run: Comparison) -> str:
    s = run.settings
    return (
        f"{run.cases} cases x forms {', '.join(run.forms)} x {s.repeats} repeats; temperature {s.temperature}, "
        f"max_tokens {s.max_tokens}; units shuffled with seed {s.seed}, each asked of every target in its own "
        "shuffled order"
    )


def summarize(run: Comparison, prices: dict[str, float]) -> tuple[list[TargetRow], list[PairRow]]:
    """The rows the terminal, the JSON and the page all show: computed once."""
    return target_rows(run, prices), pair_rows(run)


def comparison_lines(
    run: Comparison, prices: dict[str, float], rows: Sequence[TargetRow], pairs: Sequence[PairRow]
) -> list[str]:
    lines = [_design(run), *_notes(run)]
    if not prices:
        lines.append("cost per passed task: give --price-per-hour (one for all, or NAME=PRICE)")
    if rows:
        lines += [
            "",
            "pass rate (every check passed; 95% Wilson interval)",
            text_table(*pass_table(rows, run.compared)),
        ]
        lines += ["", "pairs (paired by case and repeat)", text_table(*pairs_table(pairs))]
        lines += ["", "speed, errors and cost (overall)", text_table(*speed_table(rows))]
    lines += ["", f"verdict: {overall_verdict(run)}"]
    return lines


# --- files -------------------------------------------------------------------------------------


def _plots(run: Comparison, rows: Sequence[TargetRow]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    names, tasks = run.compared, list(dict.fromkeys(r.task for r in rows))
    if not rows:
        return out
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        mine = {r.task: r.pass_rate for r in rows if r.target == name}
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(tasks))]
        ys = [mine[t].estimate if mine[t].n else 0.0 for t in tasks]
        lo = [max(0.0, y - mine[t].low) for y, t in zip(ys, tasks, strict=True)]
        hi = [max(0.0, mine[t].high - y) for y, t in zip(ys, tasks, strict=True)]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=name)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("pass rate")
    ax.legend(fontsize=8)
    ax.set_title("Pass rate per task (points) with 95% Wilson intervals (bars)")
    out["pass_rate"] = png_data_uri(fig)
    series = [[a.e2e_s * 1000 for a in run.measured if a.target == n and a.answered and a.e2e_s] for n in names]
    if any(series):
        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.boxplot([s or [math.nan] for s in series], tick_labels=names, showfliers=True)
        ax.set_yscale("log")
        ax.set_ylabel("end-to-end ms (log)")
        ax.set_title("Latency per target (every answered measured request; warm-ups excluded)")
        out["latency"] = png_data_uri(fig)
    return out


def _attempt_rows(attempts: Sequence[Attempt]) -> list[list[str]]:
    rows = []
    for a in attempts:
        failed = [f"{k}: {v}" for k, v in a.checks.items() if not v.startswith("pass")]
        verdict = "warm-up" if a.warmup else ("pass" if a.passed else "fail")
        e2e = "-" if a.e2e_s is None else f"{a.e2e_s * 1000:.0f}"
        rows.append([str(a.order), a.target, f"{a.task}/{a.case}", a.form, str(a.repeat), verdict, e2e])
        rows[-1].append("; ".join(failed)[:300] or a.detail[:300])
    return rows


def write_comparison(
    run: Comparison,
    run_dir: Path,
    prices: dict[str, float],
    rows: Sequence[TargetRow],
    pairs: Sequence[PairRow],
) -> dict[str, Path]:
    """compare.json and compare.html in ``run_dir`` (attempts.jsonl is already there)."""
    paths = {"json": run_dir / "compare.json", "html": run_dir / "compare.html", "attempts": run_dir / "attempts.jsonl"}
    data: dict[str, Any] = run.to_json()
    data.update(
        verdict=overall_verdict(run),
        prices_per_hour=prices,
        targets_rows=[r.to_json() for r in rows],
        pairs=[p.to_json() for p in pairs],
        attempts=[asdict(a) for a in run.attempts],
    )
    write_json(paths["json"], data)
    images = _plots(run, rows)
    e = html.escape
    sections = [("Settings and notes", "<ul>" + "".join(f"<li>{e(n)}</li>" for n in _settings(run)) + "</ul>")]
    if rows:
        sections += [
            ("Pass rate per task", table(*pass_table(rows, run.compared))),
            ("Pairs (paired by case and repeat)", table(*pairs_table(pairs))),
            ("Speed, errors and cost", table(*speed_table(rows))),
        ]
    sections += [(title, f"<img alt='{key}' src='{images[key]}'>") for key, title in _PLOTS if key in images]
    head = ["#", "target", "case", "form", "repeat", "verdict", "e2e ms", "what failed"]
    sections.append(("Every attempt, in the order asked", table(head, _attempt_rows(run.attempts))))
    names = " vs ".join(t.name for t in run.targets)
    title = f"devai-harness compare: {names}, {run.started_at}"
    intro = f"Verdict <b>{e(overall_verdict(run))}</b>; {len(run.measured)} measured attempts in {run.seconds:.0f} s."
    write_text(paths["html"], render_page(title, intro, sections))
    return paths


_PLOTS = (("pass_rate", "Pass rate per task"), ("latency", "Latency per target"))


def _settings(run: Comparison) -> list[str]:
    targets = ", ".join(f"{t.name} = {t.describe}" + (f" (model {t.model})" if t.model else "") for t in run.targets)
    return [f"targets: {targets}", _design(run), *_notes(run)]
