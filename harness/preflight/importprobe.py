"""Import a handler file in THIS (fresh, throwaway) process and report what importing it did.

Run by :mod:`harness.preflight.workercheck` as ``PYTHON importprobe.py FILE[:function] [--worker]`` — with the
interpreter the worker will use, which need not have devai-harness installed: this file uses the standard library
only. Never in the caller's process: a handler may exit, hang, or start a GPU at import. What it watches (field
report 002: a container that died 5-6 s after start with no logs, because importing the handler started a model
load):

* audit hooks (PEP 578): heavy framework imports (torch, vllm, ...), files opened that look like weights, DNS
  look-ups and outgoing connections, sockets bound (servers), subprocesses — each named by the line of the
  user's code that did it. Work a library does while it is itself being imported (``import runpod`` binds a
  socket and runs ``file -b``, ``uname -p``) is the library's, not the user's: an event counts only when no
  import machinery lies between it and the user's line (a heavy framework counts when the user's line imports it);
* a sampler thread that records which line of the user's code the main thread is on every 20 ms, so a slow
  import names its slow line, and a hang names where it hangs (a heartbeat on stderr);
* afterwards: threads left running, whether CUDA was initialised.

``--worker`` (a RunPod worker file): ``runpod.serverless.start`` is replaced before the file runs, so the probe
records whether and how it is called (the handler, return_aggregate_stream, concurrency_modifier, refresh_worker)
instead of entering the worker loop. The result is one JSON line on stdout after a marker; anything the handler
printed is kept as logs.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
import sysconfig
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["MARKER", "handler_kind", "probe"]

MARKER = "@@devai-importprobe@@"
HEAVY = (
    "torch",
    "vllm",
    "tensorflow",
    "jax",
    "transformers",
    "diffusers",
    "onnxruntime",
    "triton",
    "tensorrt",
    "llama_cpp",
    "sglang",
    "exllamav2",
)
WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack")
_SAMPLE_S = 0.02


def handler_kind(fn: Any) -> str:
    """sync | async | generator | async-generator, by inspect only (as runpod does)."""
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    if inspect.isasyncgenfunction(target):
        return "async-generator"
    if inspect.isgeneratorfunction(target):
        return "generator"
    if inspect.iscoroutinefunction(target):
        return "async"
    return "sync"


class _Watch:
    def __init__(self, root: Path) -> None:
        self.root = str(root.resolve())
        paths = sysconfig.get_paths()
        self.stdlib = {paths[k] for k in ("stdlib", "platstdlib")}
        self.skip = self.stdlib | {paths[k] for k in ("purelib", "platlib")}
        self.events: list[dict[str, Any]] = []
        self.seen_heavy: set[str] = set()
        self.active = True

    def mine(self, name: str) -> bool:
        return (
            name.startswith(self.root)
            and not any(name.startswith(s) for s in self.skip)
            and ("site-packages" not in name)
        )

    def where(self, frame: FrameType | None) -> str | None:
        """The innermost frame in the user's code (under the handler's folder, not in site-packages)."""
        while frame is not None:
            if self.mine(frame.f_code.co_filename):
                return f"{os.path.relpath(frame.f_code.co_filename, self.root)}:{frame.f_lineno}"
            frame = frame.f_back
        return None

    def blame(self, frame: FrameType | None, *, importing: bool) -> str | None:
        """The user's line responsible for an event, or None when a library did it. An import is the user's when
        the first frame outside the import machinery and the standard library is the user's (not a library that
        imports it); any other event is the user's when no import machinery lies between it and their line."""
        crossed_import = False
        while frame is not None:
            name = frame.f_code.co_filename
            if self.mine(name):
                if crossed_import and not importing:
                    return None  # done by a module while it was being imported: that module's work
                return f"{os.path.relpath(name, self.root)}:{frame.f_lineno}"
            if name.startswith("<frozen importlib"):
                crossed_import = True
            elif importing and not (name.startswith("<") or any(name.startswith(s) for s in self.stdlib)):
                return None  # a library's code imports it
            frame = frame.f_back
        return None

    def add(self, kind: str, detail: str, *, importing: bool = False) -> None:
        if len(self.events) >= 200:
            return
        where = self.blame(sys._getframe(2), importing=importing)
        if where is not None:
            self.events.append({"kind": kind, "detail": detail[:300], "where": where})

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "import":
            top = str(args[0]).split(".")[0]
            if top in HEAVY and top not in self.seen_heavy:
                self.seen_heavy.add(top)
                self.add("heavy-import", top, importing=True)
        elif event == "open":
            path = str(args[0])
            if path.endswith(WEIGHTS):
                self.add("weights-opened", path)
        elif event == "socket.getaddrinfo":
            self.add("network", f"DNS look-up of {args[0]}")
        elif event == "socket.connect":
            self.add("network", f"connect to {args[1]}")
        elif event == "socket.bind":
            self.add("server", f"socket bound to {args[1]}")
        elif event == "subprocess.Popen":
            self.add("subprocess", f"{args[0]} {args[1]}")


def _stub_runpod_start() -> dict[str, Any]:
    """Replace runpod.serverless.start with a recorder (runpod imported first, outside the watch: its own
    import-time work is not the user's). Returns the record it fills; ``available`` False without runpod."""
    record: dict[str, Any] = {"called": False}
    try:
        import runpod
        import runpod.serverless
    except ImportError:
        record["available"] = False
        return record
    record["available"] = True
    record["runpod_version"] = getattr(runpod, "__version__", "")

    def start(config: dict[str, Any]) -> None:
        record["called"] = True
        handler = config.get("handler") if isinstance(config, dict) else None
        record["handler"] = callable(handler)
        record["kind"] = handler_kind(handler) if callable(handler) else None
        record["options"] = sorted(k for k in (config if isinstance(config, dict) else {}) if k != "handler")

    runpod.serverless.start = start
    return record


def probe(path: Path, attribute: str | None, *, worker: bool = False) -> dict[str, Any]:
    start = _stub_runpod_start() if worker else None
    watch = _Watch(path.parent)
    sys.addaudithook(watch.hook)
    samples: Counter[str] = Counter()
    main = threading.main_thread().ident
    done = threading.Event()

    def sampler() -> None:
        last = None
        while not done.wait(_SAMPLE_S):
            frame = sys._current_frames().get(main or 0)
            line = watch.where(frame)
            if line is not None:
                samples[line] += 1
                if line != last:  # a heartbeat: if we are killed for hanging, the parent knows where
                    print(f"{MARKER}at {line}", file=sys.__stderr__, flush=True)
                    last = line

    threads_before = {t.ident for t in threading.enumerate()}
    thread = threading.Thread(target=sampler, name="devai-sampler", daemon=True)
    thread.start()
    threads_before.add(thread.ident)
    sys.path.insert(0, str(path.parent))
    result: dict[str, Any] = {
        "ok": False,
        "handler": f"{path}:{attribute}" if attribute else str(path),
        "python": sys.executable,
        "python_version": sys.version.split()[0],
    }
    t0 = time.perf_counter()
    module = None
    try:
        spec = importlib.util.spec_from_file_location("__main__" if worker else path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        result["ok"] = True
    except BaseException as exc:  # SystemExit and KeyboardInterrupt at import are findings too
        result["error"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        result["error_type"] = type(exc).__name__
        if isinstance(exc, ModuleNotFoundError):
            result["missing_module"] = exc.name
    finally:
        result["import_s"] = round(time.perf_counter() - t0, 4)
        watch.active = False
        done.set()
        thread.join(1)
    if attribute and module is not None:
        fn = getattr(module, attribute, None)
        result["callable"] = callable(fn)
        if callable(fn):
            result["kind"] = handler_kind(fn)
    if start is not None:
        result["start"] = start
    result["events"] = watch.events
    result["slowest_lines"] = [{"where": w, "seconds": round(n * _SAMPLE_S, 2)} for w, n in samples.most_common(5)]
    result["threads"] = [t.name for t in threading.enumerate() if t.ident not in threads_before]
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        result["cuda_initialized"] = bool(cuda is not None and cuda.is_initialized())
    except Exception:
        result["cuda_initialized"] = False
    return result


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--worker"]
    target, sep, attribute = args[0].rpartition(":")
    if not sep or not target.endswith(".py"):
        target, attribute = args[0], ""
    result = probe(Path(target), attribute or None, worker="--worker" in sys.argv[1:])
    sys.stdout.flush()
    print(MARKER + json.dumps(result), file=sys.__stdout__, flush=True)
    os._exit(0)  # do not run the handler's atexit hooks or wait for its non-daemon threads


if __name__ == "__main__":
    main()
