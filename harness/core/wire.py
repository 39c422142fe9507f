"""What goes on the wire and what comes back means, for every client (no I/O).

Request bodies (RunPod jobs, OpenAI chat and completions), auth headers, id validation, and the one mapping
from an HTTP error status to a typed error — 429 is :class:`RateLimited` with its Retry-After everywhere; an
OpenAI error envelope (``{"error": {"message", "type", "param", "code"}}``, also vLLM's reply to a ``stream:
true`` request that fails before streaming) fills the error's typed fields. The async clients and the sync
load driver both build their requests and errors here, so the same reply gets the same verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from harness.core.errors import ConfigError, RateLimited, StatusError
from harness.core.jobs import worker_error
from harness.core.polling import parse_retry_after
from harness.core.scrub import Redactor

__all__ = [
    "RUNPOD_BASE_URL",
    "USER_AGENT",
    "Redactor",
    "auth_headers",
    "chat_body",
    "check_id",
    "check_url",
    "completion_body",
    "job_body",
    "runpod_hint",
    "status_error",
    "summarize_body",
]

USER_AGENT = "devai-harness"
_BODY_SUMMARY = 300
_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


RUNPOD_BASE_URL = "https://api.runpod.ai/v2"  # RunPod's queue API (serverless endpoints)


def check_id(kind: str, value: Any) -> str:
    """An endpoint or job id that is safe in a URL path: letters, digits, '.', '_', '-', and not '.' or '..'."""
    if not isinstance(value, str) or not _ID.match(value) or set(value) == {"."}:
        raise ConfigError(f"invalid {kind}: expected letters, digits, '.', '_' or '-' (1-128 chars, not only dots)")
    return value


def check_url(what: str, value: str) -> str:
    """An http(s) URL given by the user, without its trailing slash; ConfigError naming ``what`` otherwise."""
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ConfigError(f"{what} must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def auth_headers(api_key: str | None, *, bearer: bool = True) -> dict[str, str]:
    """RunPod's client API and OpenAI servers take ``Bearer KEY``; RunPod's worker API takes the bare key."""
    headers = {"User-Agent": USER_AGENT}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}" if bearer else api_key
    return headers


def job_body(job_input: Any, policy: Mapping[str, Any] | None = None, webhook: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": job_input}
    if policy:
        body["policy"] = dict(policy)
    if webhook:
        body["webhook"] = webhook
    return body


def _openai_body(
    base: dict[str, Any],
    *,
    max_tokens: int | None,
    stream: bool,
    include_usage: bool,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body = {**base, **(extra or {})}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        options = body.get("stream_options")
        merged = dict(options) if isinstance(options, Mapping) else {}
        if include_usage:
            merged.setdefault("include_usage", True)  # the caller's own stream_options are kept, never replaced
        if merged:
            body["stream_options"] = merged
        else:
            body.pop("stream_options", None)
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


def chat_body(
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    stream: bool = False,
    include_usage: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``include_usage`` asks for the usage chunk on streams; ``extra`` (sampling params, the caller's own
    ``stream_options`` such as ``continuous_usage_stats``) is merged in."""
    return _openai_body(
        {"model": model, "messages": messages},
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        extra=extra,
    )


def completion_body(
    model: str,
    prompt: str,
    *,
    max_tokens: int | None = None,
    stream: bool = False,
    include_usage: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return _openai_body(
        {"model": model, "prompt": prompt},
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        extra=extra,
    )


def summarize_body(text: str, redact: Redactor | None = None) -> str:
    """A short, one-line, scrubbed summary of a reply body for messages."""
    text = (redact or Redactor())(text[: _BODY_SUMMARY * 4])
    text = " ".join(text.split())
    return text if len(text) <= _BODY_SUMMARY else text[:_BODY_SUMMARY] + "..."


_JOB_ROUTES = ("status", "status-sync", "stream", "cancel", "retry")


def runpod_hint(status: int, route: str) -> str:
    """What a RunPod status code most likely means on this route."""
    if status == 401:
        return "unauthorized: check the API key (RUNPOD_API_KEY)"
    if status == 404:
        if route in _JOB_ROUTES:
            return "unknown job id, or the job expired (results are kept 30 min after /run, 1 min after /runsync)"
        return "unknown endpoint id, or a wrong base URL"
    return ""


def status_error(
    method: str,
    url: str,
    status: int,
    body: bytes | str,
    *,
    retry_after: str | None = None,
    hint: str = "",
    attempts: int | None = None,
    redact: Redactor | None = None,
) -> StatusError:
    """The typed error for an HTTP error reply. ``url`` is the full URL (its query is dropped), so a base-URL
    mistake shows in the message."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    summary = summarize_body(text, redact)
    where = (redact or Redactor())(url.split("?", 1)[0])
    msg = f"{method} {where}: HTTP {status}" + (f" ({hint})" if hint else "")
    msg += f": {summary}" if summary else ""
    fields = _envelope(text)
    ra = parse_retry_after(retry_after)
    if status == 429:
        if attempts:
            msg += f" after {attempts} attempt(s)"
        return RateLimited(msg, retry_after=ra, body=summary, method=method, path=where, **fields)
    return StatusError(msg, status_code=status, body=summary, method=method, path=where, retry_after=ra, **fields)


def _envelope(text: str) -> dict[str, Any]:
    """error_type / error_code / param from an OpenAI error envelope, or nothing."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return {}
    err = worker_error(data)
    return {"error_type": err.error_type, "error_code": err.code, "param": err.param}
