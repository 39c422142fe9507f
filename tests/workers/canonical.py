"""The canonical RunPod worker file every guide shows (made by us, for the harness's tests)."""

import runpod


def handler(job):
    prompt = job["input"].get("prompt", "")
    return {"echo": prompt, "words": len(prompt.split())}


runpod.serverless.start({"handler": handler})
