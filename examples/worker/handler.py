"""A minimal RunPod worker, the shape every RunPod guide shows (an example made by us: it echoes the prompt where a
real worker would call its model). Try it: devai-harness worker-check examples/worker/handler.py"""

import runpod


def handler(job):
    prompt = job["input"].get("prompt", "")
    return f"You said: {prompt}"


runpod.serverless.start({"handler": handler})
