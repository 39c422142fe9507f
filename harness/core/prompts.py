"""The fixed smoke-test prompt: one short chat, the same bytes every time. The shape probes, the main job's
timing probes and the load users send it; it says whether an endpoint answers, not how it serves real traffic
(a repeated prompt is mostly answered from vLLM's prefix cache)."""

from __future__ import annotations

from typing import Any

__all__ = ["SMOKE_CHAT"]

SMOKE_CHAT: list[dict[str, Any]] = [{"role": "user", "content": "Write a Python function that reverses a string."}]
