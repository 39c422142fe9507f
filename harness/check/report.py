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
from harness.reporting.rows import rows_table

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
        section = type(s.rows[0]).SECTION if s.rows else None
        if section is not None:
            listed = [r for r in s.rows if r.listed()]
            body = table(*rows_table(listed)) if listed else "<p>every test passed</p>"
            sections.append((section.format(summary=s.summary), body))
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
    run.report, run.report_json = paths, data
    run.requests = data.get("requests")
    return paths


def _junit_cases(run: CheckRun, data: dict[str, Any]) -> list[JUnitCase]:
    cases = []
    for s in run.stages:
        fail = s.summary if s.verdict == FAIL else None
        skip = f"{s.verdict}: {s.summary}" if s.verdict in (NOT_CHECKED, NA) else None
        cases.append(JUnitCase("check.stage", s.name, failure=fail, skipped=skip, error=s.error, time_s=s.seconds))
        cases.extend(case for case in (r.junit() for r in s.rows) if case is not None)
    if run.interrupted:
        cases.append(JUnitCase("check.stage", "run", error=run.interrupted))
    for c in (data.get("requests") or {}).get("checks", []):
        cases.append(JUnitCase("check.requests", c["name"], failure=None if c["ok"] else c["detail"]))
    return cases
