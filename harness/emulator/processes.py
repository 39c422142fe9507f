"""Real workers: each emulator worker is the user's own process (``emulate --worker "python handler.py"``) or
container (``--image``), started with RunPod's worker environment, so the runpod SDK version the user pinned
drives their handler through the worker API (harness.emulator.workerapi) — as on the platform.

* Scale-up spawns one; the idle timeout sends SIGTERM to its process group, then SIGKILL after a grace period.
* The cold start is measured, not simulated: from spawn to the worker's first job take (with the first line it
  printed and the SDK's "Starting Serverless Worker" line on the way, as ``milestones``).
* A process that exits on its own is a crash: the worker shows as unhealthy with its last output kept, its jobs go
  back to the queue, and it is restarted after a backoff (1 s, doubling to 30 s) — field report 002, for real.
* Everything a worker prints is kept per worker (introspection route), optionally written to a log folder and
  echoed with the worker's id in front (``emulate``).

The SDK's automatic system checks (memory, disk, and a TCP connection to 8.8.8.8, each fatal on failure) are off
by default here (``RUNPOD_SKIP_AUTO_SYSTEM_CHECKS=true``): a platform machine passes them, a laptop or an offline
CI machine may not. Fitness checks the user registers still run. The user's RUNPOD_API_KEY is not passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from harness.core.errors import ConfigError
from harness.emulator.config import EmulatorConfig
from harness.emulator.pool import Endpoint, EWorker

__all__ = ["ContainerLauncher", "ProcessLauncher", "docker_available", "launcher_for", "worker_env"]

MAX_LOG_LINES = 500
_SDK_START = "Starting Serverless Worker"
_NOT_PASSED = ("RUNPOD_API_KEY", "OPENAI_API_KEY")


def docker_available() -> tuple[bool, str]:
    """(True, "") or (False, why) — without starting anything."""
    try:
        import docker
    except ImportError:
        return False, "testcontainers/docker are not installed: pip install 'devai-harness[containers]'"
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        # Checked first: the docker SDK leaks its socket when it fails to reach an engine.
        return False, "no Docker engine: DOCKER_HOST is unset and /var/run/docker.sock does not exist"
    client = None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and friends: no engine reachable
        return False, f"no Docker engine reachable at {host or '/var/run/docker.sock'} ({type(exc).__name__})"
    finally:
        if client is not None:
            client.close()
    return True, ""


def worker_env(config: EmulatorConfig, base_url: str, worker_id: str) -> dict[str, str]:
    """What RunPod sets in a worker container (real-systems reference §2), pointing at this emulator."""
    ep = f"{base_url.rstrip('/')}/{config.endpoint_id}"
    return {
        "RUNPOD_WEBHOOK_GET_JOB": f"{ep}/job-take/$ID?gpu=emulated",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{ep}/job-done/$RUNPOD_POD_ID/$ID?gpu=emulated",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{ep}/job-stream/$RUNPOD_POD_ID/$ID?gpu=emulated",
        "RUNPOD_WEBHOOK_PING": f"{ep}/ping/$RUNPOD_POD_ID?gpu=emulated",
        "RUNPOD_AI_API_KEY": config.worker_key,
        "RUNPOD_POD_ID": worker_id,
        "RUNPOD_POD_HOSTNAME": worker_id,
        "RUNPOD_ENDPOINT_ID": config.endpoint_id,
        "RUNPOD_PING_INTERVAL": str(config.ping_interval_ms),
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
        "PYTHONUNBUFFERED": "1",
    }


class _Launcher:
    """The restart loop and the logs; subclasses start, await and end one process or container."""

    def __init__(
        self,
        config: EmulatorConfig,
        public_url: Callable[[], str],
        *,
        echo: Callable[[str, str], None] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.public_url = public_url
        self.echo = echo
        self.log_dir = log_dir
        self.ep: Endpoint | None = None
        self._stopping: set[str] = set()
        self._files: dict[str, TextIO] = {}

    def attach(self, endpoint: Endpoint) -> None:
        self.ep = endpoint

    def env(self, w: EWorker) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED}
        platform = worker_env(self.config, self.public_url(), w.id)
        return inherited | platform | dict(self.config.worker_env)  # the user's --worker-env wins

    async def run(self, w: EWorker) -> None:
        ep = self.ep
        assert ep is not None
        backoff = 1.0
        try:
            while True:
                w.starts += 1
                w.state, w.spawned_at, w.milestones = "initializing", ep.now(), {}
                w.last_ping = None
                self.line(w, f"[emulator] starting worker {w.id} (start {w.starts}): {self.describe()}")
                code = await self.start_and_wait(w)
                if w.id not in ep.workers:
                    return  # scaled down while it ran
                if w.id in self._stopping:  # we stopped it (refresh_worker, lost pings): start a fresh one now
                    self._stopping.discard(w.id)
                    w.exits.append(f"stopped by the emulator (exit {code})")
                    continue
                took = "first_take" in w.milestones
                why = f"its process exited with code {code}" + ("" if took else " before it asked for a job")
                if code == 0 and not took:
                    why += " (does the file call runpod.serverless.start(...)?)"
                w.exits.append(why)
                self.line(w, f"[emulator] {why}; restarting in {backoff:g} s")
                ep.worker_lost(w, why)
                await asyncio.sleep(backoff)  # the platform restarts it: a crash loop when it keeps failing
                backoff = min(30.0, backoff * 2)
        finally:
            await self.terminate(w)
            file = self._files.pop(w.id, None)
            if file is not None:
                file.close()

    async def stop(self, w: EWorker) -> None:
        self._stopping.add(w.id)
        await self.terminate(w)

    def line(self, w: EWorker, text: str) -> None:
        """One line a worker printed (or the emulator said about it)."""
        if self.ep is not None and not text.startswith("[emulator]"):
            elapsed = round(self.ep.now() - w.spawned_at, 4)
            w.milestones.setdefault("first_output", elapsed)
            if _SDK_START in text:
                w.milestones.setdefault("sdk_start", elapsed)
        w.logs.append(text)
        if len(w.logs) > MAX_LOG_LINES:
            del w.logs[: len(w.logs) - MAX_LOG_LINES]
        if self.echo is not None:
            self.echo(w.id, text)
        if self.log_dir is not None:
            file = self._files.get(w.id)
            if file is None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                file = self._files[w.id] = open(self.log_dir / f"{w.id}.log", "a", encoding="utf-8")  # noqa: SIM115
            file.write(text + "\n")
            file.flush()

    def describe(self) -> str:
        raise NotImplementedError

    async def start_and_wait(self, w: EWorker) -> int:
        raise NotImplementedError

    async def terminate(self, w: EWorker) -> None:
        raise NotImplementedError


class ProcessLauncher(_Launcher):
    """A worker is ``config.worker_command`` run as its own process group in ``config.worker_cwd``."""

    def __init__(self, config: EmulatorConfig, public_url: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(config, public_url, **kwargs)
        try:
            self.argv = shlex.split(config.worker_command)
        except ValueError as exc:
            raise ConfigError(f"worker command: {exc}") from None
        if not self.argv:
            raise ConfigError("worker command is empty")
        cwd = Path(config.worker_cwd or ".")
        if not cwd.is_dir():
            raise ConfigError(f"worker directory {cwd} does not exist")
        self.cwd = cwd
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    def describe(self) -> str:
        return f"{shlex.join(self.argv)} (in {self.cwd.resolve()})"

    async def start_and_wait(self, w: EWorker) -> int:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env(w),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: the SDK's ping process goes with it
            )
        except OSError as exc:
            relative = "/" in self.argv[0] and not os.path.isabs(self.argv[0])
            where = f" (a relative path: it runs in {self.cwd.resolve()})" if relative else ""
            self.line(w, f"[emulator] could not start {self.argv[0]}: {exc.strerror}{where}")
            return 127
        self._procs[w.id] = proc
        reader = asyncio.get_running_loop().create_task(self._read(w, proc))
        try:
            await _exited(proc)
            # The worker's own process is gone: whatever it started goes with it, as in a container; and only then
            # does its output pipe reach its end.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 5)
            return proc.returncode if proc.returncode is not None else -1
        finally:
            reader.cancel()
            if proc.returncode is not None:
                _close(proc)

    async def _read(self, w: EWorker, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            self.line(w, raw.decode("utf-8", "replace").rstrip("\n"))

    async def terminate(self, w: EWorker) -> None:
        proc = self._procs.get(w.id)  # kept until it is reaped: a second terminate (the emulator stopping) waits too
        if proc is None:
            return
        if proc.returncode is not None:
            self._procs.pop(w.id, None)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        if not await _exited(proc, within=self.config.worker_stop_grace_s):
            self.line(w, f"[emulator] no exit {self.config.worker_stop_grace_s:g} s after SIGTERM: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group (the SDK's ping process)
        await proc.wait()
        _close(proc)
        if self._procs.get(w.id) is proc:
            del self._procs[w.id]


async def _exited(proc: asyncio.subprocess.Process, *, within: float | None = None) -> bool:
    """Whether the process exited (within ``within`` seconds, or ever). Polled, not proc.wait(): on Python 3.11
    that also waits for the output pipe to close, and the SDK's heartbeat process (a forked child) keeps it open
    after the worker's own process died."""
    deadline = None if within is None else time.monotonic() + within
    while proc.returncode is None:  # no event fires before the pipes close
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _close(proc: asyncio.subprocess.Process) -> None:
    """asyncio closes a finished child's transport a few loop turns later; an emulator stopping now would
    leave it to the garbage collector on a closed loop."""
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()


class ContainerLauncher(_Launcher):
    """A worker is ``config.worker_image`` run through testcontainers with the host's network (so the
    emulator on 127.0.0.1 is reachable) and the same environment; Ryuk (its reaper image) is not used."""

    def __init__(self, config: EmulatorConfig, public_url: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(config, public_url, **kwargs)
        ok, why = docker_available()
        if not ok:
            raise ConfigError(f"--image needs a Docker engine: {why}")
        self._containers: dict[str, Any] = {}

    def describe(self) -> str:
        return f"container {self.config.worker_image} (network host)"

    async def _start(self, w: EWorker) -> Any:
        """The worker's container, started: a crashed one is started again (as the platform restarts it, and
        without copying the image again), else a new one. None when Docker refused."""
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.core.container import DockerContainer

        try:
            existing = self._containers.get(w.id)
            if existing is not None:
                wrapped = existing.get_wrapped_container()
                await asyncio.to_thread(wrapped.start)
                return wrapped
            container = DockerContainer(self.config.worker_image).with_kwargs(network_mode="host")
            for key, value in self.env(w).items():
                container = container.with_env(key, value)
            await asyncio.to_thread(container.start)
        except Exception as exc:  # the docker SDK's errors: a missing image, a daemon error
            self.line(w, f"[emulator] could not start the container: {type(exc).__name__}: {exc}")
            return None
        self._containers[w.id] = container
        return container.get_wrapped_container()

    def env(self, w: EWorker) -> dict[str, str]:  # a container gets the platform's variables, not the host's
        return worker_env(self.config, self.public_url(), w.id) | dict(self.config.worker_env)

    async def start_and_wait(self, w: EWorker) -> int:
        since = int(time.time())  # a restarted container's log stream begins with this run
        wrapped = await self._start(w)
        if wrapped is None:
            return 125
        loop = asyncio.get_running_loop()

        def follow() -> None:
            for raw in wrapped.logs(stream=True, follow=True, since=since):
                text = raw.decode("utf-8", "replace").rstrip("\n")
                loop.call_soon_threadsafe(self.line, w, text)

        reader = asyncio.ensure_future(asyncio.to_thread(follow))
        result = await asyncio.to_thread(wrapped.wait)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader, 5)
        return int(result.get("StatusCode", -1)) if isinstance(result, dict) else -1

    async def terminate(self, w: EWorker) -> None:
        container = self._containers.pop(w.id, None)
        if container is None:
            return
        wrapped = container.get_wrapped_container()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(wrapped.stop, timeout=int(self.config.worker_stop_grace_s))
        with contextlib.suppress(Exception):
            await asyncio.to_thread(wrapped.remove, force=True)


def launcher_for(config: EmulatorConfig, public_url: Callable[[], str], **kwargs: Any) -> _Launcher | None:
    if config.worker_command:
        return ProcessLauncher(config, public_url, **kwargs)
    if config.worker_image:
        return ContainerLauncher(config, public_url, **kwargs)
    return None
