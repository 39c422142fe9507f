"""A scripted, stateful stand-in for RunPod's queue API behind httpx.MockTransport.

Each route replies from a script (a list of replies; the last one repeats), so a test states the
exact sequence a real endpoint would produce — IN_QUEUE, IN_QUEUE, COMPLETED — and then asserts
on what the client sent. Made by us for unit tests; it is not the emulator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

API_KEY = "rp_TESTKEY_4f9c2a7d1e"
ENDPOINT = "ep123"
BASE = "https://api.runpod.ai/v2"

Reply = dict[str, Any] | httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def job(status: str, job_id: str = "job-1", **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "status": status, **extra}


def health(workers: dict[str, int] | None = None, **jobs: int) -> dict[str, Any]:
    base_jobs = {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 1, "retried": 0}
    return {"jobs": {**base_jobs, **jobs}, "workers": workers or {"idle": 0, "running": 0}}


@dataclass
class FakeRunPod:
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def script(self, route: str, *replies: Reply) -> FakeRunPod:
        """``route`` is the first path segment after the endpoint id: run, runsync, status, ..."""
        self.scripts[route] = list(replies)
        return self

    def calls(self, route: str) -> list[httpx.Request]:
        return [r for r in self.requests if self._route(r) == route]

    @staticmethod
    def _route(request: httpx.Request) -> str:
        m = re.match(rf"^/v2/{ENDPOINT}/([a-z-]+)", request.url.path)
        return m.group(1) if m else ""

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return httpx.Response(401, text="Unauthorized")
        route = self._route(request)
        script = self.scripts.get(route)
        if not script:
            return httpx.Response(404, json={"error": f"no script for {route}"})
        reply = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        if callable(reply):
            return reply(request)
        return httpx.Response(200, json=reply)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)
