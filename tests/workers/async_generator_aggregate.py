"""An async-generator worker with return_aggregate_stream (made by us): /status output is the list of yields."""

import asyncio

import runpod


async def handler(job):
    for i in range(int(job["input"].get("n", 3))):
        await asyncio.sleep(0.02)
        yield {"i": i}


runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
