"""A plain sync handler (made by us for tests)."""


def handler(job):
    return {"echo": job["input"].get("text", ""), "job_id": job["id"]}


def failing(job):
    raise ValueError("bad input: " + str(job["input"].get("text")))


def returns_error(job):
    return {"error": "returned error dict"}
