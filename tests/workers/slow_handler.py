"""A worker whose handler runs for a long time (made by us): for cancel and executionTimeout."""

import asyncio

import runpod


async def handler(job):
    await asyncio.sleep(float(job["input"].get("seconds", 30)))
    return {"slept": True}


runpod.serverless.start({"handler": handler})
