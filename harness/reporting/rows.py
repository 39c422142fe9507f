"""A result row that knows how it is shown: its columns, its cells, and its JUnit case — so a renderer (the
terminal, the HTML page, JUnit) lays out any stage's rows without knowing which stage they came from.

Each row type says once: ``COLUMNS`` (headers, with units), ``SECTION`` (the HTML section's title, ``{summary}``
filled in; None: not on the page), ``TERMINAL`` (listed under the stage's line in the terminal), and answers
``cells()``, ``listed()`` (on the page: the suite lists only what did not pass) and ``junit()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

from harness.reporting.junit import JUnitCase

__all__ = ["Row", "cell", "ms", "rows_table"]


class Row(Protocol):
    COLUMNS: ClassVar[tuple[str, ...]]
    SECTION: ClassVar[str | None]
    TERMINAL: ClassVar[bool]

    def cells(self) -> list[str]: ...

    def listed(self) -> bool: ...

    def junit(self) -> JUnitCase | None: ...


def ms(value: float | None) -> str:
    """Milliseconds, whole; "-" when there is none."""
    return "-" if value is None else f"{value:.0f}"


def cell(value: object) -> str:
    return "-" if value is None else str(value)


def rows_table(rows: Sequence[Row], *, width: int | None = None) -> tuple[tuple[str, ...], list[list[str]]]:
    """Headers and cells of rows of one type; ``width`` cuts each cell (the terminal)."""
    cells = [r.cells() for r in rows]
    if width is not None:
        cells = [[c[:width] for c in row] for row in cells]
    return type(rows[0]).COLUMNS, cells
