"""The HTML every report is made of: a page (self-contained, one style), tables, a list of checks, a plot as a
data URI. Text in is escaped here; a section's body is HTML already. Writing the page goes through
:mod:`harness.reporting.files`."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["checks_html", "fmt", "png_data_uri", "render_page", "table"]


def png_data_uri(fig: Any) -> str:
    """A matplotlib figure as an inline PNG (closed after)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def fmt(v: Any, scale: float = 1.0) -> str:
    """A number scaled to one decimal, or "-" when there is none."""
    return "-" if v is None else f"{v * scale:.1f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def checks_html(checks: Iterable[dict[str, Any]]) -> str:
    e = html.escape
    items = "".join(
        f"<li class='{'ok' if c['ok'] else 'bad'}'>{'PASS' if c['ok'] else 'FAIL'} "
        f"{e(c['name'])}: {e(c['detail'])}</li>"
        for c in checks
    )
    return f"<ul>{items}</ul>"


def render_page(title: str, intro: str, sections: Sequence[tuple[str, str]]) -> str:
    """One self-contained HTML page: ``intro`` and section bodies are HTML already; titles are escaped."""
    e = html.escape
    body = "".join(f"<h2>{e(name)}</h2>{content}" for name, content in sections)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}.ok{{color:#080}}.bad{{color:#b00}}
.na{{color:#666}}img{{max-width:100%}}</style></head><body>
<h1>{e(title)}</h1><p>{intro}</p>{body}</body></html>"""
