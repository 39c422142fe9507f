"""Returns an output no client will understand (made by us for tests)."""


def handler(job):
    return {"result": {"maybe": "text"}}
