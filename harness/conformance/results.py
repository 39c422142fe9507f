"""Results as people and CI read them: one text-table writer and one JUnit writer for the suite, the CLI
and the load report, and the suite's rows (task x case x form, one verdict per check)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["JUnitCase", "ResultRow", "Results", "text_table", "write_junit"]


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, a rule under the header; cells are strings already."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


@dataclass(frozen=True, slots=True)
class JUnitCase:
    classname: str
    name: str
    failure: str | None = None  # a finding: the endpoint fell short
    skipped: str | None = None  # NOT CHECKED, with why
    error: str | None = None  # the harness could not run the check
    time_s: float | None = None


def write_junit(path: str | Path, suite: str, cases: Sequence[JUnitCase]) -> Path:
    """One ``<testsuite>`` with a ``<testcase>`` per case; failures, skips and errors counted."""
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(c.failure is not None for c in cases)),
        errors=str(sum(c.error is not None for c in cases)),
        skipped=str(sum(c.skipped is not None for c in cases)),
    )
    for c in cases:
        attrs = {"classname": c.classname, "name": c.name}
        if c.time_s is not None:
            attrs["time"] = f"{c.time_s:.3f}"
        node = ET.SubElement(root, "testcase", attrs)
        for tag, text in (("failure", c.failure), ("error", c.error), ("skipped", c.skipped)):
            if text is not None:
                ET.SubElement(node, tag, message=text[:500])
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out


@dataclass(slots=True)
class ResultRow:
    test: str
    task: str
    case: str
    form: str
    checks: dict[str, str] = field(default_factory=dict)  # check -> pass | fail: message | skip: reason
    latency_ms: float | None = None
    output_tokens: int | None = None
    shape: str = "-"
    target: str = ""


@dataclass(slots=True)
class Results:
    rows: list[ResultRow] = field(default_factory=list)

    def table(self) -> str:
        """task x case x form: checks passed, the ones that failed or were skipped, latency, tokens, shape."""
        if not self.rows:
            return ""
        self.rows.sort(key=lambda r: (r.task, r.case, r.form))  # xdist workers finish in any order
        head = ["task", "case", "form", "checks", "failed / skipped", "ms", "tokens", "shape"]
        body = []
        for r in self.rows:
            kinds = [v.split(":")[0] for v in r.checks.values()]
            odd = [
                f"{'FAIL' if v.startswith('fail') else 'skip'} {k.removeprefix('check_')}"
                for k, v in r.checks.items()
                if not v.startswith("pass")
            ]
            body.append(
                [
                    r.task,
                    r.case,
                    r.form,
                    f"{kinds.count('pass')}/{len(kinds)} ok",
                    ", ".join(odd) or "-",
                    "-" if r.latency_ms is None else f"{r.latency_ms:.0f}",
                    "-" if r.output_tokens is None else str(r.output_tokens),
                    r.shape,
                ]
            )
        return text_table(head, body)

    def junit_cases(self) -> list[JUnitCase]:
        cases = []
        for r in self.rows:
            for check, verdict in r.checks.items():
                kind, _, message = verdict.partition(": ")
                cases.append(
                    JUnitCase(
                        classname=f"{r.task}.{r.case}.{r.form}",
                        name=check,
                        failure=message if kind == "fail" else None,
                        skipped=message if kind == "skip" else None,
                    )
                )
        return cases

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """``PATH.json`` (every row) and ``PATH.xml`` (JUnit: one testcase per check)."""
        base = Path(path)
        base.parent.mkdir(parents=True, exist_ok=True)
        json_path, xml_path = base.with_suffix(".json"), base.with_suffix(".xml")
        json_path.write_text(json.dumps([asdict(r) for r in self.rows], indent=2), encoding="utf-8")
        write_junit(xml_path, "devai-harness", self.junit_cases())
        return json_path, xml_path
