"""TTFT and every chunk gap under N concurrent streams against an OpenAI-compatible server (vLLM, LM Studio,
Ollama, llama.cpp, or a RunPod endpoint's /openai/v1 route). The key is read from OPENAI_API_KEY.

    locust -f locustfiles/streaming.py --headless --host http://127.0.0.1:8000/v1 -u 8 -r 8 -t 60s \\
        --run-dir runs/streaming && devai-harness report runs/streaming

Flags (locust's own --help cannot list them: it is printed before a locustfile loads):
  --host URL            the server's base URL, ending in /v1
  --model NAME          the model (default: the first one /v1/models lists)
  --packet-clock        times from kernel packet timestamps: right even when starved of CPU (CAP_NET_RAW)
  --job-timeout S       the longest wait for a whole reply (default 300; a stream may not be silent for 30 s)
  --run-dir DIR         where the records go (default runs/latest)
A user whose requests all fail backs off and stops the run, saying why.
"""

from harness.load.users import StreamingUser

__all__ = ["StreamingUser"]
