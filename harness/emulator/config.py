"""Emulator configuration: one dataclass tree, loaded from YAML, validated with clear ConfigErrors.

One set of defaults for ``emulate``, ``check`` and the pytest plugin's ``emulator`` fixture: RunPod's endpoint
defaults (0 active workers, max 3, idle timeout 5 s, FlashBoot on, execution timeout 600 s; /runsync waits
90 s; results kept 30 min after /run, 1 min after /runsync), a 2 s cold start, the warm pickup model (a worker
idle for more than 0.2 s takes 1 s to pick up a job: field report 000 saw warm 1-3 s vs hot 0.1-0.5 s of
delay on RunPod — a model, not a measurement) and the scripted engine's generation speed (first token after
0.1 s, then 40 tokens/s). :func:`describe` says them in one line for banners."""

from __future__ import annotations

import dataclasses
import math
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.core.yamltext import parse_yaml_bytes
from harness.emulator.engines import DEFAULT_TOKENS_PER_S, DEFAULT_TTFT_S

__all__ = ["ColdStart", "EmulatorConfig", "HttpFault", "WorkerFaults", "describe", "load_config"]


@dataclass(frozen=True, slots=True)
class ColdStart:
    """Seconds from a worker being asked for to it taking jobs: fixed, uniform or lognormal."""

    seconds: float = 2.0
    dist: str = "fixed"  # fixed | uniform | lognormal
    low: float = 0.0
    high: float = 0.0
    sigma: float = 0.5

    def sample(self, rng: random.Random) -> float:
        if self.dist == "uniform":
            return rng.uniform(self.low, self.high)
        if self.dist == "lognormal":  # ``seconds`` is the median
            return self.seconds * math.exp(rng.gauss(0, self.sigma))
        return self.seconds


@dataclass(frozen=True, slots=True)
class HttpFault:
    """Replies to matching requests: ``status`` (429, 500, ...), ``drop`` (connection cut after the
    headers) or ``malformed`` (truncated JSON). Applies to requests number ``after+1 .. after+count``
    of that route (count 0 = all)."""

    route: str = "*"
    status: int | None = None
    retry_after: float | None = None
    drop: bool = False
    malformed: bool = False
    count: int = 1
    after: int = 0


@dataclass(frozen=True, slots=True)
class WorkerFaults:
    """What goes wrong inside workers.

    zombie: ``ignores_queue`` (workers come up idle and never take a job), ``stuck_running``
    (workers report running yet take nothing), ``takes_jobs`` (jobs start and never finish).
    crash_at_import: the handler raises this message while its module is imported (every start).
    zombie_after_jobs: workers behave until they have finished this many jobs (field report 000)."""

    zombie: str | None = None
    zombie_after_jobs: int = 0
    crash_at_import: str | None = None
    throttled: int = 0  # workers that exist but never get a GPU
    crash_restart_s: float = 1.0


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    endpoint_id: str = "emulator"
    api_key: str = ""  # empty: a random key is made at start
    min_workers: int = 0
    max_workers: int = 3
    concurrency: int = 1
    idle_timeout_s: float = 5.0
    cold_start: ColdStart = field(default_factory=ColdStart)
    flashboot: bool = True
    flashboot_window_s: float = 60.0
    flashboot_start_s: float = 0.5
    handler: str = "builtin"  # or "path/to/file.py:handler" / "package.module:handler"
    return_aggregate_stream: bool = True
    error_semantics: str = "runpod>=1.7.7"  # or "legacy": yielded errors stay inside COMPLETED output
    worker: dict[str, Any] = field(default_factory=dict)  # options of the reference handler (harness.worker)
    # The warm pickup model: a worker idle longer than hot_window_s takes idle_pickup_s to pick up a job
    # (field report 000 measured warm 1-3 s vs hot 0.1-0.5 s delay on RunPod). 0 turns it off.
    idle_pickup_s: float = 1.0
    hot_window_s: float = 0.2
    execution_timeout_s: float = 600.0
    runsync_wait_ms: int = 90_000
    stream_hold_s: float = 10.0
    retention_run_s: float = 1800.0
    retention_runsync_s: float = 60.0
    max_run_bytes: int = 10 * 1024 * 1024
    max_runsync_bytes: int = 20 * 1024 * 1024
    faults: WorkerFaults = field(default_factory=WorkerFaults)
    http_faults: tuple[HttpFault, ...] = ()
    seed: int = 0
    # Real workers (harness.emulator.processes): each worker is this command line, or this container image,
    # started with RunPod's worker environment; the runpod SDK inside drives the handler through the worker API.
    worker_command: str = ""
    worker_image: str = ""
    worker_cwd: str = ""
    worker_env: dict[str, str] = field(default_factory=dict)
    worker_key: str = ""  # the workers' own key (RUNPOD_AI_API_KEY), never the user's; made at start when empty
    ping_interval_ms: int = 10_000  # RUNPOD_PING_INTERVAL; a worker silent for 3 intervals is unhealthy
    worker_stop_grace_s: float = 10.0  # SIGTERM, then SIGKILL after this long
    take_hold_s: float = 10.0  # how long a job take (or a stop poll) is held when there is nothing to give

    @property
    def remote_workers(self) -> bool:
        return bool(self.worker_command or self.worker_image)

    def __post_init__(self) -> None:
        if self.max_workers < 0 or self.min_workers < 0 or self.min_workers > self.max_workers:
            raise ConfigError("workers: need 0 <= min_workers <= max_workers")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        if self.error_semantics not in ("runpod>=1.7.7", "legacy"):
            raise ConfigError("error_semantics must be 'runpod>=1.7.7' or 'legacy'")
        if self.faults.zombie not in (None, "ignores_queue", "stuck_running", "takes_jobs"):
            raise ConfigError("faults.zombie must be ignores_queue, stuck_running or takes_jobs")
        if self.cold_start.dist not in ("fixed", "uniform", "lognormal"):
            raise ConfigError("cold_start.dist must be fixed, uniform or lognormal")
        if self.worker_command and self.worker_image:
            raise ConfigError("a worker is a command line or a container image, not both")
        if self.remote_workers and self.handler != "builtin":
            raise ConfigError("handler (an in-process function) and worker_command/worker_image exclude each other")

    def with_key(self) -> EmulatorConfig:
        """Keys made for this run where none was given: the API key users send, and the workers' own."""
        return dataclasses.replace(
            self,
            api_key=self.api_key or "emu-" + secrets.token_hex(12),
            worker_key=self.worker_key or "wk-" + secrets.token_hex(12),
        )

    def replace(self, **changes: Any) -> EmulatorConfig:
        return dataclasses.replace(self, **changes)


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(names))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_config(source: str | Path | dict[str, Any] | None = None, **overrides: Any) -> EmulatorConfig:
    """From a YAML file path, a mapping, or nothing (defaults); ``overrides`` win."""
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, dict):
        data = dict(source)
    else:
        path = Path(source)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read emulator config {path}: {exc.strerror}") from None
        loaded = parse_yaml_bytes(raw, f"emulator config {path}")
        data = dict(loaded.get("emulator", loaded)) if isinstance(loaded, dict) else {}
    data.update(overrides)
    data.pop("description", None)
    cold = data.get("cold_start")
    if isinstance(cold, (int, float)):
        data["cold_start"] = ColdStart(seconds=float(cold))
    elif isinstance(cold, dict):
        data["cold_start"] = _build(ColdStart, cold, "cold_start")
    if isinstance(data.get("faults"), dict):
        data["faults"] = _build(WorkerFaults, data["faults"], "faults")
    if isinstance(data.get("http_faults"), list):
        data["http_faults"] = tuple(
            f if isinstance(f, HttpFault) else _build(HttpFault, f, f"http_faults[{i}]")
            for i, f in enumerate(data["http_faults"])
        )
    return _build(EmulatorConfig, data, "emulator config")  # type: ignore[no-any-return]


def describe(cfg: EmulatorConfig) -> str:
    """The settings a latency number depends on, in one line (banners, reports)."""
    scale = f"workers {cfg.min_workers}..{cfg.max_workers}, idle timeout {cfg.idle_timeout_s:g} s"
    if cfg.remote_workers:
        what = f"`{cfg.worker_command}`" if cfg.worker_command else f"image {cfg.worker_image}"
        return f"{scale}; each worker runs {what} under the runpod SDK: cold starts and pickup are measured"
    w = cfg.worker
    engine = w.get("engine", "scripted")
    speed = ""
    if engine == "scripted":
        ttft, tps = w.get("ttft_s", DEFAULT_TTFT_S), w.get("tokens_per_s", DEFAULT_TOKENS_PER_S)
        speed = f" (first token {ttft:g} s, {tps:g} tokens/s)" if tps else f" (first token {ttft:g} s, instant after)"
    cold = cfg.cold_start
    cold_s = f"{cold.seconds:g} s" if cold.dist == "fixed" else f"{cold.dist} {cold.seconds:g} s"
    pickup = f"warm pickup {cfg.idle_pickup_s:g} s (modelled)" if cfg.idle_pickup_s > 0 else "no warm pickup delay"
    return (
        f"workers {cfg.min_workers}..{cfg.max_workers}, cold start {cold_s}, idle timeout {cfg.idle_timeout_s:g} s, "
        f"FlashBoot {'on' if cfg.flashboot else 'off'}, {pickup}, handler {cfg.handler}, engine {engine}{speed}"
    )
