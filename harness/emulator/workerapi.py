"""RunPod's worker-facing job API, as runpod-python 1.12 speaks it, so a real worker — the user's file running
``runpod.serverless.start`` under the SDK version they pinned — takes its jobs from the emulator.

The SDK reads these from its environment (harness.emulator.processes sets them) and appends to their query:

* ``GET job-take/{worker}?...&job_in_progress=0|1``: take one job, a long poll — 200 ``{"id", "input"}``, or 204
  after ``take_hold_s``; ``GET job-take-batch/{worker}?...&batch_size=N`` (concurrency > 1) answers a list;
* ``POST job-done/{worker}/{job}?...&isStream=false|true``: the result, ``{"output"}`` or ``{"error"}`` (plus
  ``"stopPod"`` for refresh_worker) — a repeat of it changes nothing (the SDK retries);
* ``POST job-stream/{worker}/{job}``: one generator yield ``{"output": chunk}``, buffered for ``/stream``;
* ``GET ping/{worker}?job_id=...&runpod_version=...``: the heartbeat; three silent intervals make it unhealthy;
* ``GET job-stop/{worker}``: stop signals, a long poll — ``{"jobsToStop": [ids]}`` (cancel, executionTimeout).

Bodies arrive as JSON text with ``Content-Type: application/x-www-form-urlencoded`` (as the SDK sends them) and
the key is the workers' own (``RUNPOD_AI_API_KEY``, bare), never the user's API key. A progress update is a
job-done with ``"status": "IN_PROGRESS"``: its output shows in /status while the job runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.core.jobs import JobStatus
from harness.emulator.bodies import read_json
from harness.emulator.handlers import Outcome
from harness.emulator.pool import EJob, Endpoint, EWorker

__all__ = ["WORKER_ROUTES", "worker_routes"]

WORKER_ROUTES = frozenset({"job-take", "job-take-batch", "job-done", "job-stream", "ping", "job-stop"})


def _endpoint(request: Request) -> Endpoint:
    ep: Endpoint = request.app.state.endpoint
    return ep


def _err(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _worker(request: Request) -> EWorker | JSONResponse:
    w = _endpoint(request).workers.get(request.path_params["worker_id"])
    if w is None or not w.remote:
        return _err(404, "unknown worker: workers are started by the emulator (emulate --worker or --image)")
    return w


def _ready(ep: Endpoint, w: EWorker) -> None:
    """The first job take is the end of the cold start: spawn to asking for work, measured."""
    if w.state != "initializing":
        return
    now = ep.now()
    w.cold_start_s = now - w.spawned_at
    w.milestones["first_take"] = round(w.cold_start_s, 4)
    w.state, w.idle_since = "idle", now
    ep.note("ready", f"{w.id} took its first job request {w.cold_start_s:.3f} s after it was started")


async def job_take(request: Request) -> Response:
    ep = _endpoint(request)
    w = _worker(request)
    if isinstance(w, JSONResponse):
        return w
    if w.state == "unhealthy":
        return Response(status_code=204)  # lost and being restarted: its jobs went back to the queue
    _ready(ep, w)
    batch = request.url.path.split("/")[-2] == "job-take-batch"
    try:
        wanted = max(1, int(request.query_params.get("batch_size", "1"))) if batch else 1
    except ValueError:
        return _err(400, "batch_size must be a whole number")
    if ep.is_closing:
        return Response(status_code=204)
    if w.take is not None and not w.take[0].done():
        w.take[0].set_result([])  # one take at a time per worker: the newer one wins
    reply: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
    w.take = (reply, wanted)
    ep.dispatch()
    try:
        jobs = await asyncio.wait_for(asyncio.shield(reply), ep.config.take_hold_s)
    except TimeoutError:
        jobs = []
    finally:
        if w.take is not None and w.take[0] is reply:
            w.take = None
    if not jobs:
        return Response(status_code=204)
    return JSONResponse(jobs if batch else jobs[0])


def _job(request: Request, w: EWorker) -> EJob | JSONResponse:
    job = _endpoint(request).get(request.path_params["job_id"])
    if job is None:
        return _err(404, "job not found (unknown id, or past its retention window)")
    if job.worker_id != w.id:
        return _err(409, f"job {job.id} was not given to worker {w.id}")
    return job


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    # JSON text, whatever the content type says (the SDK's way); a job's result may be as large as a /runsync reply
    return await read_json(request, _endpoint(request).config.max_runsync_bytes)


async def job_done(request: Request) -> Response:
    ep = _endpoint(request)
    w = _worker(request)
    if isinstance(w, JSONResponse):
        return w
    job = _job(request, w)
    if isinstance(job, JSONResponse):
        return job
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    if job.terminal:  # a retried or late result changes nothing; a stopped job's worker is free again
        if job.id in w.stopping:
            ep.release(w, job.id)
        return JSONResponse({"id": job.id, "status": job.status})
    if body.get("status") == JobStatus.IN_PROGRESS:  # runpod.serverless.progress_update
        ep.progress(job, body.get("output"))
        return JSONResponse({"id": job.id, "status": job.status})
    if body.get("error"):
        error = body["error"]
        ep.conclude(w, job, Outcome(JobStatus.FAILED, error=error if isinstance(error, str) else json.dumps(error)))
    else:
        output = body.get("output")
        streamed = request.query_params.get("isStream") == "true"
        ep.conclude(w, job, Outcome(JobStatus.COMPLETED, output=None if streamed and output == [] else output))
    if body.get("stopPod"):  # refresh_worker: the platform restarts the worker after this job
        ep.restart(w, "refresh_worker: the handler asked for a fresh worker")
    return JSONResponse({"id": job.id, "status": job.status})


async def job_stream(request: Request) -> Response:
    w = _worker(request)
    if isinstance(w, JSONResponse):
        return w
    job = _job(request, w)
    if isinstance(job, JSONResponse):
        return job
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    _endpoint(request).stream_chunk(job, body.get("output"))
    return JSONResponse({"id": job.id, "status": job.status})


async def ping(request: Request) -> Response:
    ep = _endpoint(request)
    w = _worker(request)
    if isinstance(w, JSONResponse):
        return w
    w.last_ping = ep.now()
    w.sdk = request.query_params.get("runpod_version", w.sdk)
    running = {i for value in request.query_params.getlist("job_id") for i in value.split(",") if i}
    for job_id in sorted(w.stopping):
        if job_id in running:
            ep.signal_stop(w, job_id)  # still at it: say it again
        else:
            ep.release(w, job_id)
    return Response(status_code=200)


async def job_stop(request: Request) -> Response:
    ep = _endpoint(request)
    w = _worker(request)
    if isinstance(w, JSONResponse):
        return w
    if not w.stops and not ep.is_closing:
        w.stop_event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w.stop_event.wait(), ep.config.take_hold_s)
    if not w.stops:
        return Response(status_code=204)
    ids, w.stops = w.stops, []
    return JSONResponse({"jobsToStop": ids})


def worker_routes(base: str) -> list[Route]:
    return [
        Route(f"{base}/job-take/{{worker_id}}", job_take, methods=["GET"]),
        Route(f"{base}/job-take-batch/{{worker_id}}", job_take, methods=["GET"]),
        Route(f"{base}/job-done/{{worker_id}}/{{job_id}}", job_done, methods=["POST"]),
        Route(f"{base}/job-stream/{{worker_id}}/{{job_id}}", job_stream, methods=["POST"]),
        Route(f"{base}/ping/{{worker_id}}", ping, methods=["GET"]),
        Route(f"{base}/job-stop/{{worker_id}}", job_stop, methods=["GET"]),
    ]
