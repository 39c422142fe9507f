"""A generator worker (made by us): each yield is one /stream chunk; no aggregate: /status output stays empty."""

import runpod


def handler(job):
    yield from job["input"].get("prompt", "a b c").split()


runpod.serverless.start({"handler": handler})
