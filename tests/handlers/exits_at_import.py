"""Calls sys.exit while being imported (made by us for tests)."""

import sys

sys.exit(3)


def handler(job):
    return "unreachable"
