"""RunPod's queue API as an ASGI app (starlette), over one :class:`Endpoint`.

Routes, field names and codes follow docs/reference/runpod-queue.md §1. Where RunPod
documents no error body, ours is ``{"error": "..."}`` with the status code that matters.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from harness.core.jobs import JobStatus, worker_error
from harness.emulator.bodies import read_json
from harness.emulator.config import EmulatorConfig, HttpFault
from harness.emulator.pool import EJob, Endpoint, WorkerLauncher
from harness.emulator.workerapi import WORKER_ROUTES, worker_routes

__all__ = ["create_app"]

_WAIT_RANGE_MS = (1000, 300_000)


def _err(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _endpoint(request: Request) -> Endpoint:
    ep: Endpoint = request.app.state.endpoint
    return ep


def _wait_ms(request: Request, default: float) -> float:
    raw = request.query_params.get("wait")
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        value = default
    return min(max(value, _WAIT_RANGE_MS[0]), _WAIT_RANGE_MS[1])


def _job(request: Request) -> EJob | JSONResponse:
    job = _endpoint(request).get(request.path_params["job_id"])
    return job if job is not None else _err(404, "job not found (unknown id, expired ttl or past retention)")


async def _body(request: Request, limit: int) -> dict[str, Any] | JSONResponse:
    data = await read_json(request, limit)
    if isinstance(data, JSONResponse):
        return data
    if "input" not in data:
        return _err(400, "body must be an object with an 'input' field")
    if not isinstance(data.get("policy", {}), dict):
        return _err(400, "'policy' must be an object")
    return data


async def run(request: Request) -> Response:
    data = await _body(request, _endpoint(request).config.max_run_bytes)
    if isinstance(data, JSONResponse):
        return data
    job = _endpoint(request).submit(data["input"], data.get("policy"), sync=False)
    return JSONResponse({"id": job.id, "status": JobStatus.IN_QUEUE})  # as RunPod: the status at acceptance


async def runsync(request: Request) -> Response:
    ep = _endpoint(request)
    data = await _body(request, ep.config.max_runsync_bytes)
    if isinstance(data, JSONResponse):
        return data
    job = ep.submit(data["input"], data.get("policy"), sync=True)
    await ep.wait(job, _wait_ms(request, ep.config.runsync_wait_ms) / 1000)
    if not job.terminal:
        return JSONResponse({"id": job.id, "status": job.status})  # outlived the wait: the id is the way back
    return JSONResponse(job.to_json(), status_code=400 if job.status == JobStatus.FAILED else 200)


async def status(request: Request) -> Response:
    job = _job(request)
    return job if isinstance(job, JSONResponse) else JSONResponse(job.to_json())


async def status_sync(request: Request) -> Response:
    job = _job(request)
    if isinstance(job, JSONResponse):
        return job
    await _endpoint(request).wait(job, _wait_ms(request, 90_000) / 1000)
    return JSONResponse(job.to_json())


async def stream(request: Request) -> Response:
    ep = _endpoint(request)
    job = _job(request)
    if isinstance(job, JSONResponse):
        return job
    if not job.buffer and not job.terminal:  # an empty poll is held, as on RunPod
        hold = ep.config.stream_hold_s if "wait" not in request.query_params else _wait_ms(request, 0) / 1000
        await ep.wait(job, hold, until_chunk=True)
    items, job.buffer = job.buffer, []
    body: dict[str, Any] = {"status": job.status, "stream": [{"output": x} for x in items], "id": job.id}
    if job.started_at is not None:
        body["delayTime"] = job.to_json()["delayTime"]
    return JSONResponse(body)


async def cancel(request: Request) -> Response:
    job = _job(request)
    if isinstance(job, JSONResponse):
        return job
    _endpoint(request).cancel(job)
    return JSONResponse({"id": job.id, "status": job.status})


async def retry(request: Request) -> Response:
    job = _job(request)
    if isinstance(job, JSONResponse):
        return job
    if not _endpoint(request).retry(job):
        return _err(400, f"job is {job.status}: only FAILED or TIMED_OUT jobs can be retried")
    return JSONResponse({"id": job.id, "status": JobStatus.IN_QUEUE})


async def purge_queue(request: Request) -> Response:
    return JSONResponse({"removed": _endpoint(request).purge(), "status": "completed"})


async def health(request: Request) -> Response:
    return JSONResponse(_endpoint(request).health())


async def openai_passthrough(request: Request) -> Response:
    """RunPod's /openai/v1/... route: the request becomes a job for the worker's OpenAI route; a stream
    relays the job's chunks as they are produced (SSE text items as they are, chunk dicts as events)."""
    ep = _endpoint(request)
    route = "/v1/" + request.path_params["path"]
    if request.method == "GET":
        body: dict[str, Any] = {}
    else:
        data = await read_json(request, ep.config.max_run_bytes)
        if isinstance(data, JSONResponse):
            return data
        body = data
    job = ep.submit({"openai_route": route, "openai_input": body}, None, sync=False)
    if not body.get("stream"):
        await ep.wait(job, ep.config.execution_timeout_s)
        if job.status != JobStatus.COMPLETED:
            return _openai_error(job)
        output = job.output[0] if isinstance(job.output, list) and job.output else job.output
        return JSONResponse(output)

    async def relay() -> AsyncIterator[bytes]:
        while True:
            await ep.wait(job, ep.config.execution_timeout_s, until_chunk=True)
            items, job.buffer = job.buffer, []
            for item in items:
                if isinstance(item, str):
                    yield item.encode()
                else:
                    for event in item if isinstance(item, list) else [item]:
                        yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
            if job.terminal and not job.buffer:
                if job.status != JobStatus.COMPLETED:
                    yield f"data: {json.dumps(_openai_error_body(job))}\n\n".encode()
                return

    return StreamingResponse(relay(), media_type="text/event-stream")


def _openai_error_body(job: EJob) -> dict[str, Any]:
    err = worker_error(job.error or f"job {job.status}", default_type=job.status)
    return {"error": {"message": err.message, "type": err.error_type, "code": err.code}}


def _openai_error(job: EJob) -> JSONResponse:
    body = _openai_error_body(job)
    code = body["error"]["code"]
    return JSONResponse(body, status_code=code if isinstance(code, int) and 400 <= code < 600 else 500)


async def introspect(request: Request) -> Response:
    """Emulator-only: workers (with captured import tracebacks) and the recent event trail."""
    ep = _endpoint(request)
    workers = [
        {
            "id": w.id,
            "state": w.state,
            "jobs": sorted(w.jobs),
            "finished": w.finished,
            "starts": w.starts,
            "cold_start_s": round(w.cold_start_s, 4),
            "logs": w.logs[-50:] if w.remote else w.logs[-5:],
            "remote": w.remote,
            "milestones": w.milestones,
            "exits": w.exits[-10:],
            "sdk": w.sdk,
        }
        for w in ep.workers.values()
    ]
    events = [{"t": round(t, 4), "kind": k, "detail": d} for t, k, d in ep.events[-200:]]
    counts = dict(request.app.state.request_counts)
    return JSONResponse({"workers": workers, "events": events, "health": ep.health(), "requests": counts})


class _Guard:
    """Auth, endpoint id, and injected HTTP faults, before any route runs."""

    def __init__(self, app: ASGIApp, config: EmulatorConfig) -> None:
        self.app = app
        self.config = config
        self.prefix = f"/v2/{config.endpoint_id}/"
        self.seen: dict[int, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith(self.prefix):
            await _err(404, "unknown endpoint")(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        route = path[len(self.prefix) :].split("/", 1)[0]
        # Workers use their own key (RUNPOD_AI_API_KEY, sent bare by the SDK), never the user's API key.
        key = self.config.worker_key if route in WORKER_ROUTES else self.config.api_key
        if not key or not (hmac.compare_digest(auth, f"Bearer {key}") or hmac.compare_digest(auth, key)):
            message = "Unauthorized"
            if route in WORKER_ROUTES:  # runpod-python sends ~/.runpod/config.toml's key when there is one
                message += ": worker routes take the workers' key (RUNPOD_AI_API_KEY; not ~/.runpod/config.toml's)"
            await _err(401, message)(scope, receive, send)
            return
        scope["app"].state.request_counts[route] += 1  # requests per route, for benchmarks (GET .../_emulator)
        fault = self._fault(route)
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.drop:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
            raise ConnectionAbortedError("injected fault: connection dropped mid-reply")
        elif fault.malformed:
            await Response('{"id": "x", "status": "COMPL', media_type="application/json")(scope, receive, send)
        else:
            hdrs = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            await _err(fault.status or 500, "injected fault", hdrs)(scope, receive, send)

    def _fault(self, route: str) -> HttpFault | None:
        for i, f in enumerate(self.config.http_faults):
            if f.route not in ("*", route):
                continue
            n = self.seen[i] = self.seen.get(i, 0) + 1
            if n > f.after and (f.count == 0 or n <= f.after + f.count):
                return f
        return None


def create_app(
    config: EmulatorConfig, *, clock: Callable[[], float] | None = None, launcher: WorkerLauncher | None = None
) -> Starlette:
    """The app; its lifespan owns the Endpoint (started on the server's loop). ``clock``: see Endpoint;
    ``launcher``: real workers (harness.emulator.processes), which take their jobs through the worker API."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ep = Endpoint(config, clock=clock, launcher=launcher)
        app.state.endpoint = ep
        ep.start()
        try:
            yield
        finally:
            await ep.stop()

    both = ["GET", "POST"]
    base = f"/v2/{config.endpoint_id}"
    app = Starlette(
        routes=[
            Route(f"{base}/run", run, methods=["POST"]),
            Route(f"{base}/runsync", runsync, methods=["POST"]),
            Route(f"{base}/status/{{job_id}}", status, methods=both),
            Route(f"{base}/status-sync/{{job_id}}", status_sync, methods=both),
            Route(f"{base}/stream/{{job_id}}", stream, methods=both),
            Route(f"{base}/cancel/{{job_id}}", cancel, methods=["POST"]),
            Route(f"{base}/retry/{{job_id}}", retry, methods=["POST"]),
            Route(f"{base}/purge-queue", purge_queue, methods=["POST"]),
            Route(f"{base}/health", health, methods=["GET"]),
            Route(f"{base}/_emulator", introspect, methods=["GET"]),
            Route(f"{base}/openai/v1/{{path:path}}", openai_passthrough, methods=["GET", "POST"]),
            *worker_routes(base),
        ],
        middleware=[Middleware(_Guard, config=config)],  # auth, endpoint id and injected faults, before routes
        lifespan=lifespan,
    )
    app.state.request_counts = Counter()
    return app
