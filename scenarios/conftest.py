"""Where this project keeps its cassettes: one folder per scenario module under the top-level cassettes/.
(Cassette format and scrubbing come from the devai-harness plugin itself.)"""

from __future__ import annotations

from pathlib import Path

import pytest

CASSETTES = Path(__file__).parent.parent / "cassettes"


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])
