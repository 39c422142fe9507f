"""Requests/s and end-to-end latency of non-streamed chat completions against an OpenAI-compatible server (no
TTFT: a whole reply does not say when its first token was made). The key is read from OPENAI_API_KEY.

    locust -f locustfiles/chat.py --headless --host http://127.0.0.1:8000/v1 -u 32 -r 32 -t 60s \\
        --run-dir runs/chat && devai-harness report runs/chat

Flags (locust's own --help cannot list them: it is printed before a locustfile loads):
  --host URL            the server's base URL, ending in /v1
  --model NAME          the model (default: the first one /v1/models lists)
  --packet-clock        times from kernel packet timestamps: right even when starved of CPU (CAP_NET_RAW)
  --job-timeout S       the longest wait for a whole reply (default 300)
  --run-dir DIR         where the records go (default runs/latest)
A user whose requests all fail backs off and stops the run, saying why.
"""

from harness.load.users import ChatUser

__all__ = ["ChatUser"]
