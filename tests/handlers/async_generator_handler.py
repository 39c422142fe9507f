"""An async generator handler (made by us for tests)."""

import asyncio


async def handler(job):
    for i in range(int(job["input"].get("n", 3))):
        await asyncio.sleep(float(job["input"].get("gap", 0)))
        yield {"i": i}


async def text_stream(job):
    for word in ("streamed ", "text ", "works"):
        await asyncio.sleep(0)
        yield word
