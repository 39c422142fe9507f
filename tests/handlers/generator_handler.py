"""Generator handlers (made by us for tests)."""


def handler(job):
    yield from job["input"].get("text", "a b c").split()


def yields_error(job):
    yield "partial"
    yield {"error": "yielded error after one chunk"}
