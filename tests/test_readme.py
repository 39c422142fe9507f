"""Every command block of the README is true: each is marked with how it is tested, and the ones that can run
offline run (in CI's system stage: they take minutes). The two set-up commands are run by .ci/run itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MARKED = re.compile(r"<!-- test: (?P<how>[^>]*?) -->\n```bash\n(?P<body>.*?)```", re.S)
BLOCKS = [(m.group("how"), m.group("body")) for m in MARKED.finditer(README)]
KEY = "local-test-key"


def test_every_command_block_says_how_it_is_tested() -> None:
    assert README.count("```bash") == len(BLOCKS), "a ```bash block without a <!-- test: ... --> line above it"
    for how, _ in BLOCKS:
        assert how in ("setup", "run", "emulator") or how.startswith("skip ("), how
    setup = next(body for how, body in BLOCKS if how == "setup").splitlines()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "<!-- test: setup -->" in ci and len(setup) == 2  # .ci/run runs these two lines as they are written


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OPENAI_"))}
    return env | {"RUNPOD_API_KEY": KEY}


@pytest.fixture
def emulator() -> Iterator[None]:
    """`devai-harness emulate` as the README starts it, for the blocks that talk to it."""
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "devai-harness"), "emulate", "--port", "8000", "--api-key-env", "RUNPOD_API_KEY"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "RunPod emulator on http://127.0.0.1:8000/v2/emulator" in line, line
        time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


RUNNABLE = [pytest.param(body, id=f"{i}-{how}") for i, (how, body) in enumerate(BLOCKS) if how in ("run", "emulator")]


@pytest.mark.system
@pytest.mark.parametrize("body", RUNNABLE)
def test_the_readme_block_runs(body: str, request: pytest.FixtureRequest) -> None:
    if not (ROOT / ".venv" / "bin" / "devai-harness").exists():
        pytest.fail("the README's commands use .venv/: run the set-up command first", pytrace=False)
    how = next(h for h, b in BLOCKS if b == body)
    if how == "emulator":
        request.getfixturevalue("emulator")
    shutil.rmtree(ROOT / "runs" / "latency", ignore_errors=True)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", body], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
