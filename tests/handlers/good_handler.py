"""A well-behaved handler (made by us for tests): nothing heavy at import, worker-vllm-like output."""


def handler(job):
    prompt = job["input"].get("prompt", "")
    return [{"choices": [{"tokens": [f"Answer to: {prompt}"]}], "usage": {"input": 3, "output": 4}}]
