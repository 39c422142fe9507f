"""Dies while being imported, like field report 002's FastAPI lifespan loading a model (made by us)."""

raise RuntimeError("model load failed at import time: no GPU")


def handler(job):  # never reached
    return "unreachable"
