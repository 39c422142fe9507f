"""Requests/s and end-to-end latency of non-streaming chat completions against an OpenAI-compatible URL
(--host http://127.0.0.1:8000/v1, or a RunPod endpoint's .../openai/v1; key from OPENAI_API_KEY)."""

from harness.load.users import ChatUser

__all__ = ["ChatUser"]
