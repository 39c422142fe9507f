"""Async I/O loops over the core, for pytest and the CLI: transport (httpx, error mapping, retries), the RunPod
client, the OpenAI-compatible client, and stream transcripts."""
