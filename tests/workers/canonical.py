"""The canonical RunPod worker file every guide shows (made by us, for the harness's tests)."""

import runpod


def handler(job):
    prompt = job["input"].get("prompt", "")
    return f"you said: {prompt}"


runpod.serverless.start({"handler": handler})
