"""Import a handler module in THIS (fresh, throwaway) process and report what importing it did.

Run as ``python -m harness.preflight.importprobe PATH`` by :mod:`harness.preflight.workercheck`, never in the caller's
process: a handler may exit, hang, or start a GPU at import. What it watches (field report 002: a
container that died 5-6 s after start with no logs, because importing the handler started a model
load):

* audit hooks (PEP 578): heavy framework imports (torch, vllm, ...), files opened that look like
  weights, DNS look-ups and outgoing connections, sockets bound (servers), subprocesses;
* a sampler thread that records which line of the user's code the main thread is on every 20 ms,
  so a slow import names its slow line, and a hang names where it hangs (a heartbeat on stderr);
* afterwards: threads left running, whether CUDA was initialised.

The result is one JSON line on stdout after a marker; anything the handler printed is kept as logs.
"""

from __future__ import annotations

import importlib.util
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

__all__ = ["MARKER", "probe"]

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


class _Watch:
    def __init__(self, root: Path) -> None:
        self.root = str(root.resolve())
        self.skip = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        self.events: list[dict[str, Any]] = []
        self.seen_heavy: set[str] = set()
        self.active = True

    def where(self, frame: FrameType | None) -> str | None:
        """The innermost frame in the user's code (under the handler's folder, not in site-packages)."""
        while frame is not None:
            name = frame.f_code.co_filename
            if (
                name.startswith(self.root)
                and not any(name.startswith(s) for s in self.skip)
                and "site-packages" not in name
            ):
                return f"{os.path.relpath(name, self.root)}:{frame.f_lineno}"
            frame = frame.f_back
        return None

    def add(self, kind: str, detail: str) -> None:
        if len(self.events) < 200:
            self.events.append({"kind": kind, "detail": detail[:300], "where": self.where(sys._getframe(2))})

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "import":
            top = str(args[0]).split(".")[0]
            if top in HEAVY and top not in self.seen_heavy:
                self.seen_heavy.add(top)
                self.add("heavy-import", top)
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


def probe(path: Path, attribute: str) -> dict[str, Any]:
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
    result: dict[str, Any] = {"ok": False, "handler": f"{path}:{attribute}"}
    t0 = time.perf_counter()
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        fn = getattr(module, attribute, None)
        result["callable"] = callable(fn)
        result["ok"] = True
    except BaseException as exc:  # SystemExit and KeyboardInterrupt at import are findings too
        result["error"] = "".join(traceback.format_exception(exc))
        result["error_type"] = type(exc).__name__
    finally:
        result["import_s"] = round(time.perf_counter() - t0, 4)
        watch.active = False
        done.set()
        thread.join(1)
    if result.get("callable"):  # imported after the timing: it is ours, not the handler's
        from harness.emulator.handlers import handler_kind

        result["kind"] = handler_kind(getattr(sys.modules[path.stem], attribute))
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
    target, _, attribute = sys.argv[1].rpartition(":")
    if not target.endswith(".py"):
        target, attribute = sys.argv[1], "handler"
    result = probe(Path(target), attribute or "handler")
    sys.stdout.flush()
    print(MARKER + json.dumps(result), file=sys.__stdout__, flush=True)
    os._exit(0)  # do not run the handler's atexit hooks or wait for its non-daemon threads


if __name__ == "__main__":
    main()
