"""A generator worker that yields one chunk, then worker-vllm's error object (made by us). runpod >= 1.7.7 fails the
job on a yielded {"error": ...}; older SDKs complete it with the error object inside the output."""

import runpod


def handler(job):
    yield {"choices": [{"tokens": ["partial "]}]}
    yield {"error": {"object": "error", "message": "model overloaded", "type": "ServiceUnavailable", "code": 503}}


runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
