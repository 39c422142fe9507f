"""Cassette settings for the scenario modules (pytest-recording / vcrpy).

Recorded URLs are rewritten to the replay endpoint (https://api.runpod.ai/v2/replay/...), so a cassette
recorded from the emulator or a live endpoint replays the same way; Authorization and cookies are
removed before anything is written; each cassette carries a ``meta`` block.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.suite import REPLAY_BASE_URL, REPLAY_ENDPOINT, CassetteYAML

CASSETTES = Path(__file__).parent.parent / "cassettes"
_ENDPOINT_PREFIX = re.compile(r"^https?://[^/]+/v2/[^/?]+")


def _to_replay(request: Any) -> Any:
    request.uri = _ENDPOINT_PREFIX.sub(f"{REPLAY_BASE_URL}/{REPLAY_ENDPOINT}", request.uri)
    return request


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    vcr.register_serializer("harness", CassetteYAML)


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "serializer": "harness",
        "filter_headers": [
            ("authorization", None),
            ("cookie", None),
            ("set-cookie", None),
            ("x-api-key", None),
            ("host", None),
        ],
        "before_record_request": _to_replay,
        "match_on": ["method", "scheme", "host", "path", "query"],
        "decode_compressed_response": True,
        "path_transformer": lambda path: path if path.endswith(".yaml") else path + ".yaml",
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])
