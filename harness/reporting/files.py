"""Every file the harness writes goes through here: scrubbed (:mod:`harness.core.scrub`), written whole or not at
all (a temporary file beside it, then renamed: a killed run or a full disk never leaves a torn report), and a
failure to write is :class:`~harness.core.errors.OutputError` naming the folder — the run's error, one line.

:func:`claim_run_dir` makes the folder a run writes into: a folder that holds another run's results is refused,
never emptied.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from harness.core.errors import ConfigError, OutputError
from harness.core.scrub import scrub, scrub_bytes

__all__ = [
    "RUN_MARKERS",
    "claim_run_dir",
    "output_error",
    "scrub_tree",
    "write_bytes",
    "write_json",
    "write_streamed",
    "write_text",
]

# What says a folder holds a run already: its records, its report, its suite's results.
RUN_MARKERS = ("records-*.jsonl", "process-*.json", "report.json", "suite-junit.xml", "compare.json", "attempts.jsonl")


def output_error(folder: Path | str, exc: OSError) -> OutputError:
    return OutputError(f"cannot write to {folder}: {exc.strerror or exc}", path=str(folder))


@contextlib.contextmanager
def write_streamed(path: Path, mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """A file to write ``path`` through as it goes (a CSV too big to hold), whole or not at all: a temporary
    beside it, renamed when the block ends without an error. The caller scrubs what it writes."""
    folder = path.parent
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise output_error(folder, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_bytes(path: Path, data: bytes) -> Path:
    """``data`` (scrubbed) into ``path``, whole or not at all."""
    with write_streamed(path) as f:
        f.write(scrub_bytes(data))
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, scrub(text).encode("utf-8"))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def scrub_tree(folder: Path) -> int:
    """Scrub, in place, the files another process wrote into ``folder`` (a pytest run's JUnit and logs): how many
    changed. Files over 64 MiB are left as they are (nothing of ours writes one)."""
    changed = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            if path.stat().st_size > 64 << 20:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        clean = scrub_bytes(data)
        if clean != data:
            write_bytes(path, clean)
            changed += 1
    return changed


def claim_run_dir(given: str | None, default: str) -> Path:
    """The folder for a new run: ``given`` (refused when it holds another run's results), else ``default`` (a
    timestamped name; ``-2``, ``-3``... when two runs start in the same second)."""
    if given:
        path = Path(given)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--run-dir {given}: not a folder")
        held = [m for m in RUN_MARKERS if path.is_dir() and any(path.glob(m))]
        if held:
            raise ConfigError(
                f"--run-dir {given} holds another run ({', '.join(held)}): choose a new folder (nothing was removed)"
            )
        candidates = [path]
    else:
        candidates = [Path(default), *(Path(f"{default}-{n}") for n in range(2, 1000))]
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=bool(given))
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise output_error(path, exc) from None
    raise ConfigError(f"{default}: no free run folder name")
