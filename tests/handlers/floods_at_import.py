"""A handler that prints 200 MB at import (made by us for tests): a busy printer, not a crash loop."""

import sys

_LINE = "x" * 1023 + "\n"
for _ in range(200 * 1024):
    sys.stdout.write(_LINE)
sys.stdout.flush()


def handler(job):
    return [{"choices": [{"tokens": ["ok"]}], "usage": {"input": 1, "output": 1}}]
