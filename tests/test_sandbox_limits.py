"""Limits hold for a case as a whole, under bubblewrap (system stage): memory across processes, the process count,
/tmp and the case folder, deep trees; each attack's check fails with its reason and nothing is left on the host
(no process of nobody's, no case cgroup, no case folder in the temp directory)."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.conformance import cgroups, isolation, sandbox
from tests.realsystems import bwrap_or_skip

pytestmark = pytest.mark.system

FORK = "import ctypes, os, time\nlibc = ctypes.CDLL(None)\n"
ATTACKS = {
    # Three processes of 600 MB each: each under its own 2 GiB address-space limit, over the case's 1 GiB.
    "memory across processes": FORK
    + "for _ in range(2):\n    if libc.fork() == 0:\n        break\n"
    + "b = bytearray(600 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\ntime.sleep(5)\nprint('held')\n",
    "process count": FORK
    + "n = 0\nwhile n < 5000 and libc.fork() >= 0:\n    n += 1\nprint('forked', n, flush=True)\n"
    + "time.sleep(2)\nos._exit(0)\n",
    "tmp": "n = 0\ntry:\n    while n < 1024:\n        with open(f'/tmp/f{n}', 'wb') as f:\n"
    + "            f.write(b'x' * (1 << 20))\n        n += 1\nexcept OSError:\n    pass\nprint('tmp MiB', n)\n",
    "folder": "import os\nn = 0\ntry:\n    while n < 1024:\n        with open(f'f{n}', 'wb') as f:\n"
    + "            f.write(b'x' * (1 << 20))\n        n += 1\nexcept OSError:\n    pass\nprint('folder MiB', n)\n"
    + "k = 0\ntry:\n    while k < 20000:\n        open(f'i{k}', 'w').close(); k += 1\nexcept OSError:\n    pass\n",
    "deep tree": "import os\nfor _ in range(3000):\n    os.mkdir('d'); os.chdir('d')\nprint('deep done')\n",
}
TEST = "def test_x():\n    assert broken()\n"  # no such function: every attack's check must fail


def _host_state() -> set[str]:
    """nobody's processes, and the case folders in the temp directory."""
    found = subprocess.run(["pgrep", "-u", "65534"], capture_output=True, text=True, check=False).stdout.split()
    return set(found) | {str(f) for f in Path(tempfile.gettempdir()).glob("devai-sandbox-*")}


def _leftovers(before: set[str]) -> list[str]:
    """What the run left: its cgroups (a cgroup is removed only once empty), folders, and nobody's processes that
    are new and still there a moment later (another run on the machine may be starting or ending its own)."""
    new = _host_state() - before
    if new:
        time.sleep(2)
        new &= _host_state()
    left = sorted(new)  # processes and folders
    found = cgroups.find()
    groups = [] if isinstance(found, str) else [*found.memory.glob("devai-case-*"), *found.pids.glob("devai-case-*")]
    return left + [str(g) for g in groups]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_case_is_bounded_as_a_whole(attack: str) -> None:
    bwrap_or_skip()
    assert isolation.choose().kind == "bubblewrap"
    before = _host_state()
    result = sandbox.run_pytest(ATTACKS[attack], TEST, timeout=20)
    out = result.output
    assert not result.ok and result.error is None and result.reason, (result.reason, out[-2000:])
    if attack == "memory across processes" and not isinstance(cgroups.find(), str):
        assert "killed for memory" in result.reason or "held" not in out, (result.reason, out[-2000:])
    if attack == "process count":
        counts = [int(n) for n in re.findall(r"forked (\d+)", out)]
        assert counts and max(counts) <= isolation.LIMITS["processes"] + 8, out[-2000:]
    if attack in ("tmp", "folder"):
        assert int(out.split("MiB")[1].split()[0]) <= isolation.LIMITS["tmp_bytes"] >> 20, out[-2000:]
    if attack == "deep tree":
        assert "deep done" in out, out[-2000:]
    assert result.left is None
    assert _leftovers(before) == [], "the case left something on the host"
    assert "cgroup" in result.isolation or "per-process" in result.isolation


def test_concurrent_cases_each_get_their_own_process_budget() -> None:
    """nobody's RLIMIT_NPROC is per user: with a cgroup per case it must not let one case's fork loop starve the
    cases running beside it (a compare or an xdist suite runs several at once)."""
    bwrap_or_skip()
    if isinstance(cgroups.find(), str):
        pytest.skip(f"no per-case cgroup here: {cgroups.find()}")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda _: sandbox.run_pytest(ATTACKS["process count"], TEST, timeout=20), range(3)))
    made = [len(re.findall(r"forked \d+", r.output)) for r in runs]  # one line per process the case made
    assert min(made) >= 16, made  # every case forked dozens: none was starved by the others
