"""What the harness checks, named once: a :class:`Target` (its kind, where it is, which variable holds its key),
resolved from the command line and the environment by :func:`resolve_target`, and handed to a subprocess (the
suite's pytest run, whose plugin resolves it again with the same function) by :meth:`Target.to_env`. Adding a
target kind starts here.

Precedence, for every field: the command line's value, else the environment's (the variable named below), else
the default. The API key itself is never stored: only the name of the variable that holds it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import ConfigError
from harness.core.wire import RUNPOD_BASE_URL, check_id, check_url

__all__ = ["LIVE", "TARGET_KINDS", "Target", "resolve_target"]

TARGET_KINDS = ("emulator", "runpod", "runpod-local", "openai")
LIVE = frozenset({"runpod", "runpod-local", "openai"})  # a service outside the harness: its tests are `live`
SDK_LOCAL_URL = "http://127.0.0.1:8000"  # runpod-python's `--rp_serve_api` default


@dataclass(frozen=True, slots=True)
class Target:
    """Where the checks go. The API key is read from the environment variable ``api_key_env`` when needed, never
    stored or printed."""

    kind: str
    base_url: str | None = None
    endpoint_id: str | None = None
    api_key_env: str | None = None
    model: str | None = None
    config: str | None = None  # emulator YAML
    idle_timeout_s: float = 5.0

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        return (os.environ if env is None else env).get(self.api_key_env or "") or None

    def describe(self) -> str:
        if self.kind == "emulator":
            return "the embedded RunPod emulator (127.0.0.1)"
        if self.kind == "runpod":
            return f"RunPod endpoint {self.endpoint_id} at {self.base_url}"
        if self.kind == "runpod-local":
            return f"runpod-python's local test server at {self.base_url}"
        return f"OpenAI-compatible server {self.base_url}" + (f" (model {self.model})" if self.model else "")

    def to_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with this target in the variables
        :func:`resolve_target` reads: how a subprocess (the suite's pytest run) is told where to go."""
        env = dict(os.environ if base is None else base)
        key = self.api_key(env)
        if self.kind == "runpod":
            env.update(RUNPOD_ENDPOINT_ID=self.endpoint_id or "", RUNPOD_ENDPOINT_BASE_URL=self.base_url or "")
            if key:
                env["RUNPOD_API_KEY"] = key
        elif self.kind == "openai":
            env["OPENAI_BASE_URL"] = self.base_url or ""
            if key:
                env["OPENAI_API_KEY"] = key
            if self.model:
                env["OPENAI_MODEL"] = self.model
        elif self.kind == "runpod-local":
            env["RUNPOD_LOCAL_URL"] = self.base_url or ""
        return env


def resolve_target(
    kind: str,
    *,
    base_url: str | None = None,
    endpoint_id: str | None = None,
    api_key_env: str | None = None,
    model: str | None = None,
    config: str | None = None,
    idle_timeout_s: float = 5.0,
    env: Mapping[str, str] | None = None,
) -> Target:
    """Everything a target needs, checked before anything runs (ConfigError with one clear line)."""
    env = os.environ if env is None else env
    if kind not in TARGET_KINDS:
        raise ConfigError(f"unknown target {kind!r}: {', '.join(TARGET_KINDS)}")
    if idle_timeout_s <= 0:
        raise ConfigError("--idle-timeout must be positive")
    if kind == "emulator":
        if config is not None and not Path(config).is_file():
            raise ConfigError(f"emulator config {config} does not exist")
        return Target(kind, config=config, idle_timeout_s=idle_timeout_s)
    if kind == "runpod":
        endpoint = endpoint_id or env.get("RUNPOD_ENDPOINT_ID")
        if not endpoint:
            raise ConfigError("--target runpod needs an endpoint: --endpoint-id ID or RUNPOD_ENDPOINT_ID")
        key_env = api_key_env or "RUNPOD_API_KEY"
        if not env.get(key_env):
            raise ConfigError(
                f"--target runpod needs an API key in ${key_env} (choose the variable with --api-key-env)"
            )
        url = check_url("--base-url", base_url or env.get("RUNPOD_ENDPOINT_BASE_URL") or RUNPOD_BASE_URL)
        return Target(kind, url, check_id("endpoint id", endpoint), key_env, idle_timeout_s=idle_timeout_s)
    if kind == "runpod-local":
        url = check_url("--base-url", base_url or env.get("RUNPOD_LOCAL_URL") or SDK_LOCAL_URL)
        return Target(kind, url, idle_timeout_s=idle_timeout_s)
    given = base_url or env.get("OPENAI_BASE_URL")
    if not given:
        raise ConfigError("--target openai needs --base-url URL (e.g. http://127.0.0.1:8000/v1) or OPENAI_BASE_URL")
    key_env = api_key_env or "OPENAI_API_KEY"
    return Target(kind, check_url("--base-url", given), api_key_env=key_env, model=model or env.get("OPENAI_MODEL"))
