"""The baseline for load per core: plain locust FastHttpUser, written as a user of locust would write it
(``client.post`` for requests, ``client.iter_lines`` for streams), plus a request-event listener that writes
each request's server id and times to ``$PLAIN_OUT/plain-<pid>.jsonl`` for matching against the ground-truth
server's log. Pick the user by class name on the command line: PlainChat or PlainStream."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from locust import FastHttpUser, events, task

BODY = {
    "model": os.environ.get("PLAIN_MODEL", "truth"),
    "messages": [{"role": "user", "content": "Reverse a string."}],
    "max_tokens": 64,
}
OUT = os.environ.get("PLAIN_OUT", "runs/plain")
_files: dict[int, Any] = {}


def _write(row: dict[str, Any]) -> None:
    if os.getpid() not in _files:
        os.makedirs(OUT, exist_ok=True)
        _files[os.getpid()] = open(os.path.join(OUT, f"plain-{os.getpid()}.jsonl"), "a", buffering=1)  # noqa: SIM115
    _files[os.getpid()].write(json.dumps(row) + "\n")


@events.request.add_listener
def _on_request(response_time: float, response: Any, context: dict[str, Any], exception: Any, **_: Any) -> None:
    if exception is None and response is not None and not context.get("stream"):
        _write({"id": response.headers.get("x-request-id"), "e2e": response_time / 1000, "ttft": None})


class PlainChat(FastHttpUser):
    @task
    def chat(self) -> None:
        self.client.post("/chat/completions", json=BODY)


class PlainStream(FastHttpUser):
    @task
    def stream(self) -> None:
        t0 = time.perf_counter()
        ttft, rid = None, None
        for line in self.client.iter_lines(
            "/chat/completions", method="POST", json=BODY | {"stream": True}, context={"stream": True}
        ):
            if ttft is None and '"content"' in line:
                ttft = time.perf_counter() - t0
                rid = json.loads(line.removeprefix("data: "))["id"]
        _write({"id": rid, "e2e": time.perf_counter() - t0, "ttft": ttft})
