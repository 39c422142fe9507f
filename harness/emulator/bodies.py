"""Request bodies, read the way a server that cannot be flooded reads them: the declared Content-Length is refused
before a byte is read, the running count stops the read at the limit, and JSON that is not JSON (or nests deep
enough to exhaust the parser) is a 400 naming why, never a 500 with a traceback."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["DEFAULT_LIMIT", "read_json"]

DEFAULT_LIMIT = 10 * 1024 * 1024  # RunPod's /run payload limit; the routes without a stated one use it too


async def read_json(
    request: Request, limit: int = DEFAULT_LIMIT, *, openai: bool = False
) -> dict[str, Any] | JSONResponse:
    """The body as a JSON object, or the error reply to send (413 over ``limit``, 400 for anything not an object);
    ``openai``: the error in OpenAI's envelope."""

    def _refuse(status: int, message: str) -> JSONResponse:
        error: Any = {"message": message, "code": status} if openai else message
        return JSONResponse({"error": error}, status_code=status)

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _refuse(413, f"payload of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _refuse(413, f"payload is over the {limit}-byte limit")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        return _refuse(400, "body is not valid JSON (or nests too deep)")
    return data if isinstance(data, dict) else _refuse(400, "body must be a JSON object")
