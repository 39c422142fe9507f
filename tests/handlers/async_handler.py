"""An async handler that can be slow, for cancel tests (made by us for tests)."""

import asyncio

STARTED: list[str] = []
CANCELLED: list[str] = []


async def handler(job):
    STARTED.append(job["id"])
    try:
        await asyncio.sleep(float(job["input"].get("sleep", 0)))
    except asyncio.CancelledError:
        CANCELLED.append(job["id"])
        raise
    return job["input"].get("text", "done")
