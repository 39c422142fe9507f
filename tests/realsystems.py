"""Where the system stage's real third-party systems are (made by .ci/system.sh, or by hand): the runpod SDK
venvs, the vLLM server, the Docker engine, bubblewrap. A test that needs one and cannot find it FAILS — in the
system stage nothing is optional unless the machine cannot have it (Docker and bubblewrap say why they skip)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
STATE = ROOT / ".ci-state"
WORKERS = Path(__file__).parent / "workers"


def runpod_python(version: str = "1.12") -> str:
    """The python of a venv with runpod==<version>.* (DEVAI_RUNPOD_PYTHON for 1.12, or .ci-state/runpod-<v>)."""
    given = os.environ.get("DEVAI_RUNPOD_PYTHON") if version == "1.12" else None
    path = Path(given) if given else STATE / f"runpod-{version}" / "bin" / "python"
    if not path.exists():
        pytest.fail(f"no runpod {version} venv at {path}: run `bash .ci/system.sh install`", pytrace=False)
    return str(path)


def runpod_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('runpod'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def vllm_url() -> str:
    url = os.environ.get("DEVAI_VLLM_URL")
    if not url:
        pytest.fail("no vLLM server: DEVAI_VLLM_URL is unset (the system stage starts one)", pytrace=False)
    return url.rstrip("/")


def docker_or_skip() -> None:
    from harness.emulator.processes import docker_available

    ok, why = docker_available()
    if not ok:
        pytest.skip(f"no Docker engine on this machine: {why}")


def bwrap_or_skip() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")


@contextlib.contextmanager
def tiny_tmpfs(place: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs at ``place``: a disk that fills at once (root only; the test is skipped elsewhere, saying why)."""
    place.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(place)]).returncode:
        pytest.skip("a full disk is made with a tiny tmpfs: needs root and mount")
    try:
        yield place
    finally:
        subprocess.run(["umount", "-l", str(place)], check=False)
