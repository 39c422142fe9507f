"""Every committed cassette and transcript: no secrets, no hosts but loopback and api.runpod.ai, metadata."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
FILES = sorted(p for p in (ROOT / "cassettes").rglob("*.yaml") if not p.name.endswith(".clock.yaml"))
SECRETS = [
    re.compile(r"(?i)\bauthorization\b"),
    re.compile(r"(?i)bearer\s+\S+"),
    re.compile(r"\brp_[A-Za-z0-9]{8,}"),  # RunPod API keys
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),  # OpenAI-style keys
    re.compile(r"\bemu-[0-9a-f]{24}\b"),  # the emulator's per-run keys
    re.compile(r"(?i)\b(set-)?cookie\b"),
]
ALLOWED_HOSTS = {"api.runpod.ai", "127.0.0.1", "localhost", "[::1]"}


def test_there_are_cassettes_for_every_recorded_module() -> None:
    folders = {p.parent.name for p in FILES}
    assert {"test_devai_tasks", "test_protocol", "test_faults"} <= folders


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT / "cassettes")) for p in FILES])
def test_cassette_is_scrubbed_and_says_how_it_was_made(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for pattern in SECRETS:
        assert not pattern.search(text), f"{path.name}: matches {pattern.pattern}"
    for host in re.findall(r"https?://([^/\s'\"]+)", text):
        assert host.split(":")[0] in ALLOWED_HOSTS or host in ALLOWED_HOSTS, f"{path.name}: host {host}"
    meta = yaml.safe_load(text)["meta"]
    assert {"made_by", "recorded_at", "harness_version", "source"} <= set(meta)
    assert path.with_name(path.name.removesuffix(".yaml") + ".clock.yaml").exists()


def test_the_scan_catches_a_planted_secret(tmp_path: Path) -> None:
    planted = "headers:\n  Authorization: ['Bearer rp_ABCDEFGH12345678']\n"
    assert any(p.search(planted) for p in SECRETS)
    assert not any(p.search("uri: https://api.runpod.ai/v2/replay/run\n") for p in SECRETS)
