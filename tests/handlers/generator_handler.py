"""Generator handlers (made by us for tests)."""


def handler(job):
    for word in job["input"].get("text", "a b c").split():
        yield word


def yields_error(job):
    yield "partial"
    yield {"error": "yielded error after one chunk"}
