"""Cassettes: recorded clocks, the cassette format, and scrubbing — everything replay needs.

Replay runs the client's real polling and timeout code from cassettes. Its decisions depend on the
responses and on the clock, so recording also keeps every clock reading the client made (a
``.clock.yaml`` beside the cassette) and replay hands them back in order: the same polls, the same
verdicts (a zombie diagnosed after 3 s of recorded time), in milliseconds.

Scrubbing is ours, not the host project's: :func:`configure_vcr` (called by the plugin's
``pytest_recording_configure`` hook for every cassette) wraps the persister, so whatever the project's
``vcr_config`` says, nothing is written before secret headers are dropped and known secret values
(API keys from the environment, key-like query and body fields) are replaced with ``***``.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar

import yaml

from harness.core import __version__
from harness.core.clock import SystemClock
from harness.core.errors import ConfigError
from harness.core.scrub import registered, secrets_in
from harness.core.wire import Redactor
from harness.core.yamltext import parse_yaml, parse_yaml_bytes
from harness.emulator.relay import UPSTREAM_HEADER

__all__ = [
    "REPLAY_BASE_URL",
    "REPLAY_ENDPOINT",
    "SECRET_HEADERS",
    "CassetteYAML",
    "RecordingClock",
    "ReplayClock",
    "configure_vcr",
    "known_secrets",
    "scrub_cassette",
]

REPLAY_BASE_URL = "https://api.runpod.ai/v2"
REPLAY_ENDPOINT = "replay"
REPLAY_KEY = "replay-key-not-a-secret"


class RecordingClock(SystemClock):
    """The system clock, remembering every reading relative to its start."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self.readings: list[float] = []

    def now(self) -> float:
        value = time.monotonic() - self._t0
        self.readings.append(round(value, 6))
        return value

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump(
                {"note": "clock readings of the client while recording (devai-harness)", "readings": self.readings}
            ),
            encoding="utf-8",
        )


class ReplayClock:
    """Hands back recorded readings in order; sleeps return at once (the readings already say when)."""

    def __init__(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except OSError:
            raise ConfigError(f"no recorded clock at {path}: record the cassette again") from None
        data = parse_yaml_bytes(raw, f"recorded clock {path}")
        readings = data.get("readings") if isinstance(data, dict) else None
        if not isinstance(readings, list) or not all(isinstance(r, int | float) for r in readings):
            raise ConfigError(f"recorded clock {path}: no list of readings (record the cassette again)")
        self.readings: list[float] = [float(r) for r in readings]
        self._i = 0
        self.sleeps: list[float] = []

    def now(self) -> float:
        if self._i >= len(self.readings):  # the client asked more than when recording: replay diverged
            raise ConfigError(f"replay asked the clock more often than the recording did ({len(self.readings)})")
        value = self.readings[self._i]
        self._i += 1
        return value

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class CassetteYAML:
    """vcrpy serializer: plain YAML plus a ``meta`` block (how, when, with what it was made)."""

    meta: ClassVar[dict[str, Any]] = {}

    @classmethod
    def serialize(cls, cassette_dict: dict[str, Any]) -> str:
        meta = {
            "made_by": "devai-harness (pytest plugin, vcrpy)",
            "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "harness_version": __version__,
            **cls.meta,
        }
        return yaml.safe_dump({"meta": meta, **cassette_dict}, sort_keys=False, allow_unicode=True, width=1000)

    @staticmethod
    def deserialize(text: str) -> dict[str, Any]:
        data = parse_yaml(text, "a cassette") or {}
        if not isinstance(data, dict) or not isinstance(data.get("interactions", []), list):
            raise ConfigError("a cassette that is not a vcrpy cassette (no 'interactions' list)")
        data.pop("meta", None)
        return dict(data)


# --- scrubbing ---------------------------------------------------------------------------

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "openai-api-key"}
)
_SECRET_NAME = re.compile(r"(^|[_-])(api[_-]?key|key|token|secret|password|passwd|auth)$", re.I)


def known_secrets(env: dict[str, str] | None = None) -> tuple[str, ...]:
    """Values of the environment's key-like variables (RUNPOD_API_KEY, OPENAI_API_KEY, HF_TOKEN, ...) and every
    secret this process registered (a client's key, whatever variable it came from)."""
    found = secrets_in(dict(os.environ) if env is None else env)
    return tuple(v for v in {*found, *registered()} if len(v) >= 8)


def _scrub_uri(uri: str, redact: Redactor) -> str:
    parts = urllib.parse.urlsplit(uri)
    query = [
        (k, "***" if _SECRET_NAME.search(k) else v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return redact(urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query))))


def _scrub_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if isinstance(k, str) and _SECRET_NAME.search(k) else _scrub_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    return value


def _scrub_body(body: Any, redact: Redactor) -> Any:
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    with contextlib.suppress(ValueError):
        parsed = json.loads(text)
        if (scrubbed := _scrub_json(parsed)) != parsed:  # re-serialised only when a key-like field was found
            text = json.dumps(scrubbed)
    text = redact(text)
    return text.encode() if isinstance(body, bytes) else text


def scrub_cassette(cassette_dict: dict[str, Any], secrets: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A copy of vcrpy's cassette dict ({"requests": [Request], "responses": [dict]}) with secrets gone."""
    redact = Redactor(*(known_secrets() if secrets is None else secrets))
    requests = []
    for request in cassette_dict.get("requests", []):
        r = copy.deepcopy(request)
        r.uri = _scrub_uri(r.uri, redact)
        for name in list(r.headers):
            if name.lower() in SECRET_HEADERS:
                del r.headers[name]
            else:
                r.headers[name] = redact(str(r.headers[name]))
        r.body = _scrub_body(r.body, redact)
        requests.append(r)
    responses = []
    for response in cassette_dict.get("responses", []):
        resp = copy.deepcopy(response)
        headers = resp.get("headers") or {}
        resp["headers"] = {
            k: [redact(str(x)) for x in (v if isinstance(v, list) else [v])]
            for k, v in headers.items()
            if k.lower() not in SECRET_HEADERS
        }
        body = resp.get("body")
        if isinstance(body, dict) and "string" in body:
            body["string"] = _scrub_body(body["string"], redact)
        responses.append(resp)
    return {**cassette_dict, "requests": requests, "responses": responses}


class _ScrubbingPersister:
    """Wraps pytest-recording's persister: loads as it does, scrubs before every save."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def load_cassette(self, cassette_path: Any, serializer: Any) -> Any:
        """A missing or empty cassette is vcrpy's to handle (record it); a broken one is one line naming it."""
        try:
            return self._inner.load_cassette(cassette_path, serializer)
        except ConfigError as exc:
            raise ConfigError(f"cassette {cassette_path}: {exc}; record it again") from None
        except ValueError as exc:
            if type(exc).__name__ == "CassetteNotFoundError":
                raise
            raise ConfigError(f"cassette {cassette_path}: unreadable ({exc}); record it again") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cassette {cassette_path}: not a vcrpy cassette ({type(exc).__name__}: {exc})") from None

    def save_cassette(self, cassette_path: Any, cassette_dict: dict[str, Any], serializer: Any) -> None:
        self._inner.save_cassette(cassette_path, scrub_cassette(cassette_dict), serializer)


# Emulator and RunPod endpoint URLs are rewritten to one replay endpoint, so a cassette recorded from the
# emulator on any port, or from a live endpoint, replays the same way.
_ENDPOINT_URL = re.compile(r"^https?://(api\.runpod\.ai|127\.0\.0\.1(:\d+)?|localhost(:\d+)?)/v2/[^/?]+")


def _to_replay(request: Any) -> Any:
    if UPSTREAM_HEADER in {k.lower() for k in request.headers}:
        return None  # the emulator's worker asking its upstream server (engine vllm): not the client's traffic
    request.uri = _ENDPOINT_URL.sub(f"{REPLAY_BASE_URL}/{REPLAY_ENDPOINT}", request.uri)
    return request


def configure_vcr(vcr: Any) -> None:
    """Safe defaults for one cassette (a project's own vcr_config still wins where it sets a key) and a
    persister that scrubs whatever that config says. Our serializer takes the name "yaml", so cassette file
    names (and pytest-recording's rewrite mode, which deletes by that suffix) stay ``.yaml``."""
    vcr.register_serializer("yaml", CassetteYAML)
    vcr.serializer = "yaml"
    vcr.filter_headers = [(h, None) for h in sorted(SECRET_HEADERS | {"host"})]
    vcr.before_record_request = _to_replay
    vcr.decode_compressed_response = True
    vcr.match_on = ("method", "scheme", "host", "path", "query")
    vcr.register_persister(_ScrubbingPersister(vcr.persister))
