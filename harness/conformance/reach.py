"""Before a check asks anything: can the target be reached at all, and is what the user named there?

One quick exchange per target (within ``min(--timeout, 10 s)``): an OpenAI-compatible server lists its models
(``--model`` must be one of them), a RunPod endpoint answers ``/health``, runpod-python's local server answers at
all. What it finds is one of three things:

* a bad argument — a key the endpoint refuses, an unknown endpoint or route, a redirect (the base URL is not where
  the server is), a model it does not serve: :class:`~harness.core.errors.ConfigError`, one line, exit 2;
* a target that is down — nothing listening, no answer in time, a 5xx: the run's ERROR, not a finding (every stage
  says so at once instead of waiting out its deadlines);
* reachable: the stages run, and what they find is the endpoint's.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import httpx

from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.clients.transport import HTTPCore, deadline
from harness.core.clock import SystemClock
from harness.core.errors import ConfigError, ConnectError, HarnessError, Redirected, RequestTimeout, StatusError
from harness.core.polling import RetryPolicy
from harness.core.wire import auth_headers

__all__ = ["PREFLIGHT_S", "Reach", "reach_openai", "reach_runpod", "reach_sdk_local"]

PREFLIGHT_S = 10.0


@dataclass(frozen=True, slots=True)
class Reach:
    """``down`` says why the target cannot be checked (None: it answered); ``model`` is the one to ask."""

    down: str | None = None
    model: str | None = None


def _quick(timeout: float) -> float:
    return min(timeout, PREFLIGHT_S)


def _down(exc: HarnessError) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the target is down or does not answer ({type(exc).__name__}: {first})"


async def _ask(work: Awaitable[Any], timeout: float, base_url: str, not_found: str, odd: Reach) -> Any:
    """``work``'s answer, or the Reach it means: ConfigError for what the user must fix (a redirect, a refused key,
    a 404: ``not_found``), ``down`` for a target that does not answer, ``odd`` for an answer that is not one."""
    try:
        with deadline(_quick(timeout)):
            return await work
    except Redirected as exc:
        raise ConfigError(str(exc)) from None
    except StatusError as exc:
        if exc.status_code in (401, 403):
            raise ConfigError(f"{base_url}: HTTP {exc.status_code}: the API key is not accepted") from None
        if exc.status_code == 404:
            raise ConfigError(not_found) from None
        return Reach(down=_down(exc))
    except (ConnectError, RequestTimeout) as exc:
        return Reach(down=_down(exc))
    except HarnessError:
        return odd  # it answered, with something that is not what was asked: the stages will say what


async def reach_openai(oa: OpenAIClient, model: str | None, timeout: float) -> Reach:
    """GET /models: the model to use (``model``, which must be listed; else the first listed)."""
    not_found = f"{oa.base_url}/models answers 404: is the base URL right (it ends in /v1)?"
    listed = await _ask(oa.models(), timeout, oa.base_url, not_found, Reach(model=model))
    if isinstance(listed, Reach):
        return listed
    if model is None:
        if not listed:
            raise ConfigError(f"{oa.base_url}/models lists no model: give --model")
        return Reach(model=listed[0])
    if model not in listed:
        shown = ", ".join(listed[:8]) + (" ..." if len(listed) > 8 else "")
        raise ConfigError(f"--model {model}: {oa.base_url} does not serve it (it lists: {shown or 'nothing'})")
    return Reach(model=model)


async def reach_runpod(rp: RunPodClient, timeout: float) -> Reach:
    """GET /health: a key the platform refuses, or an endpoint it does not know, is the user's to fix."""
    not_found = f"{rp.base_url}/{rp.endpoint_id}/health answers 404: unknown endpoint id, or a wrong base URL"
    answer = await _ask(rp.health(max_attempts=1), timeout, rp.base_url, not_found, Reach())
    return answer if isinstance(answer, Reach) else Reach()


async def reach_sdk_local(base_url: str, timeout: float) -> Reach:
    """runpod-python's local server has no health route: any HTTP answer at its root means it is there."""
    core = HTTPCore(
        base_url,
        headers=auth_headers(None),
        secrets=(),
        transport=None,
        timeout=_quick(timeout),
        retry=RetryPolicy(max_attempts=1),
        clock=SystemClock(),
    )
    try:
        await core.send("GET", "/", idempotent=True)
    except (ConnectError, RequestTimeout) as exc:
        return Reach(down=_down(exc))
    except (HarnessError, httpx.HTTPError):
        return Reach()
    finally:
        await core.aclose()
    return Reach()
