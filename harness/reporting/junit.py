"""JUnit XML for CI: one writer for the check, the suite's rows and the load report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.reporting.files import write_bytes

__all__ = ["JUnitCase", "write_junit"]


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
    return write_bytes(Path(path), ET.tostring(root, encoding="utf-8", xml_declaration=True))
