"""``devai-harness record``: re-record the scenario cassettes; a failed recording leaves the old ones as they
were."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.reporting.files import output_error

__all__ = ["add"]

RECORDED_MODULES = ("scenarios/test_devai_tasks.py", "scenarios/test_protocol.py", "scenarios/test_faults.py")


def _cmd_record(args: argparse.Namespace) -> int:
    """Re-record the cassettes from the emulator (or a live endpoint) by running the scenario modules."""
    import subprocess

    modules = args.modules or list(RECORDED_MODULES)
    missing = [m for m in modules if not Path(m).is_file()]
    if missing:
        raise ConfigError(f"record: run it from the repository root ({', '.join(missing)} not found)")
    cmd = [sys.executable, "-m", "pytest", *modules, "--target", args.target, "--record-mode", args.mode]
    cmd += ["-p", "no:cacheprovider", "-q"]
    print("running: " + " ".join(cmd[2:]), flush=True)
    with _kept(Path("cassettes")) as kept:
        rc = subprocess.call(cmd)
        if rc == 0:
            kept.clear()  # the new recording passed: it replaces the old one
        else:
            print(f"recording failed (pytest exit {rc}): the cassettes and clocks were left as they were")
    return rc


@contextlib.contextmanager
def _kept(folder: Path) -> Iterator[list[Path]]:
    """A copy of ``folder`` put back after the block unless the block empties the yielded list (a failed or
    interrupted recording never leaves half-replaced cassettes and clocks)."""
    if not folder.is_dir():
        yield []
        return
    try:
        backup = Path(tempfile.mkdtemp(prefix=f".{folder.name}-before-record-", dir=folder.parent))
        shutil.copytree(folder, backup / folder.name)
    except OSError as exc:
        raise output_error(folder.parent, exc) from None
    keep = [backup]
    try:
        yield keep
    finally:
        if keep:
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(backup / folder.name, folder)
        shutil.rmtree(backup, ignore_errors=True)


def add(sub: Any) -> None:
    p = sub.add_parser("record", help="re-record the scenario cassettes (default: from the emulator)")
    p.add_argument("modules", nargs="*", help=f"scenario modules (default: {', '.join(RECORDED_MODULES)})")
    p.add_argument("--target", choices=["emulator", "runpod"], default="emulator")
    p.add_argument(
        "--mode",
        default="rewrite",
        choices=["rewrite", "once", "new_episodes", "all"],
        help="pytest-recording mode (default rewrite: replace each cassette)",
    )
    p.set_defaults(func=_cmd_record)
