"""The main job's report: report.json, report.html and junit.xml with every stage, whatever happened; plus the
requests' CSV, plots, timing and cost when requests were recorded. Written through :mod:`harness.reporting.files`
(scrubbed, whole or not at all)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.verdict import Verdict
from harness.load.plots import plots
from harness.load.report import load_sections, report_data
from harness.load.scan import scan
from harness.reporting.files import write_json, write_text
from harness.reporting.html import checks_html, render_page, table
from harness.reporting.junit import JUnitCase, write_junit

if TYPE_CHECKING:
    from harness.check.results import CheckRun

__all__ = ["write_check_report"]

PASS, FAIL, NOT_CHECKED, NA = Verdict.PASS, Verdict.FAIL, Verdict.NOT_CHECKED, Verdict.NA
_CLASS: dict[str, str] = {PASS: "ok", NA: "na"}


def write_check_report(run: CheckRun) -> dict[str, Path]:
    out = run.run_dir
    paths = {"json": out / "report.json", "html": out / "report.html", "junit": out / "junit.xml"}
    data = run.to_json()
    sections: list[tuple[str, str]] = []
    stage_rows = [[s.name, s.verdict, s.summary, f"{s.seconds:g}"] for s in run.stages]
    if run.interrupted:
        stage_rows.append(["(run)", "ERROR", run.interrupted, "-"])
    sections.append(("Stages", table(["stage", "verdict", "summary", "s"], stage_rows)))
    for s in run.stages:
        if s.name == "suite" and s.rows:
            failed = [r for r in s.rows if r["outcome"] != "passed"]
            body = table(["test", "outcome", "message"], [[r["test"], r["outcome"], r["message"]] for r in failed])
            sections.append((f"Suite: {s.summary}", body if failed else "<p>every test passed</p>"))
        elif s.name == "shapes" and s.rows:
            head = ["case", "ok", "shape", "delay ms", "exec ms", "detail"]
            rows = [[r["label"], r["ok"], r["shape"], r["delay_ms"], r["execution_ms"], r["detail"]] for r in s.rows]
            sections.append(("Output shapes", table(head, rows)))
        elif s.name == "semantics" and s.rows:
            rows = [[r["feature"], r["layer"], r["status"].upper(), r["detail"]] for r in s.rows]
            sections.append((f"Engine semantics: {s.summary}", table(["feature", "layer", "verdict", "detail"], rows)))
        if s.error:
            sections.append((f"Error in {s.name}", f"<pre>{html.escape(s.error)}</pre>"))
    if any(out.glob("records-*.jsonl")):
        paths["csv"] = out / "records.csv"
        recorded = scan(out, paths["csv"])
        load = report_data(recorded, [out], 2.49, run.target.idle_timeout_s, None, 10.0)
        data["requests"] = load
        sections.append(("Request checks", checks_html(load["checks"])))
        sections.extend(s for s in load_sections(load, plots(recorded, [])) if s[0] != "Checks")
    title = f"devai-harness check: {run.target.describe()}, {run.started_at}: {run.verdict}"
    data["title"] = title
    write_json(paths["json"], data)
    verdict = f"<b class='{_CLASS.get(run.verdict, 'bad')}'>{run.verdict}</b>"
    intro = f"Verdict {verdict}; results in {html.escape(str(out))}."
    write_text(paths["html"], render_page(title, intro, sections))
    write_junit(paths["junit"], "devai-harness check", _junit_cases(run, data))
    run.report = paths
    run.requests = data.get("requests")
    return paths


def _junit_cases(run: CheckRun, data: dict[str, Any]) -> list[JUnitCase]:
    cases = []
    for s in run.stages:
        fail = s.summary if s.verdict == FAIL else None
        skip = f"{s.verdict}: {s.summary}" if s.verdict in (NOT_CHECKED, NA) else None
        cases.append(JUnitCase("check.stage", s.name, failure=fail, skipped=skip, error=s.error, time_s=s.seconds))
        for r in s.rows:
            if s.name == "suite":
                outcome = r["outcome"]
                cases.append(
                    JUnitCase(
                        "check.suite",
                        r["test"],
                        failure=r["message"] if outcome in ("failure", "error") else None,
                        skipped=r["message"] if outcome == "skipped" else None,
                    )
                )
            elif s.name == "shapes":
                cases.append(JUnitCase("check.shapes", r["label"], failure=None if r["ok"] else r["detail"]))
            elif s.name == "semantics":
                fail, skip = (r["detail"] if r["status"] == "fail" else None), None
                if r["status"] in ("unsupported", "not-checked"):
                    skip = f"{r['status'].upper()}: {r['detail']}"
                cases.append(JUnitCase(f"check.semantics.{r['layer']}", r["feature"], failure=fail, skipped=skip))
    if run.interrupted:
        cases.append(JUnitCase("check.stage", "run", error=run.interrupted))
    for c in (data.get("requests") or {}).get("checks", []):
        cases.append(JUnitCase("check.requests", c["name"], failure=None if c["ok"] else c["detail"]))
    return cases
