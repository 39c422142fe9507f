"""The suite's rows (task x case x form, one verdict per check), as the terminal summary, JSON and JUnit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.reporting.files import write_json
from harness.reporting.junit import JUnitCase, write_junit
from harness.reporting.tables import text_table

__all__ = ["ResultRow", "Results"]


@dataclass(slots=True)
class ResultRow:
    test: str
    task: str
    case: str
    form: str
    checks: dict[str, str] = field(default_factory=dict)  # check -> pass | fail: … | skip: … | error: …
    latency_ms: float | None = None
    output_tokens: int | None = None
    shape: str = "-"
    target: str = ""
    isolation: str = ""  # what bounded the model-written code this row ran ("" when it ran none)


_LABEL = {"fail": "FAIL", "skip": "skip", "error": "ERROR"}


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
            odd = [f"{_LABEL[v.split(':')[0]]} {k.removeprefix('check_')}" for k, v in r.checks.items() if v != "pass"]
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
                        error=message if kind == "error" else None,
                        skipped=message if kind == "skip" else None,
                    )
                )
        return cases

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """``PATH.json`` (every row) and ``PATH.xml`` (JUnit: one testcase per check)."""
        base = Path(path)
        json_path, xml_path = base.with_suffix(".json"), base.with_suffix(".xml")
        write_json(json_path, [asdict(r) for r in self.rows])
        write_junit(xml_path, "devai-harness", self.junit_cases())
        return json_path, xml_path
