"""A worker that runs 3 jobs at once (made by us): concurrency_modifier, async handler."""

import asyncio
import time

import runpod


async def handler(job):
    started = time.monotonic()
    await asyncio.sleep(float(job["input"].get("seconds", 0.5)))
    return {"started": started}


runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda current: 3})
