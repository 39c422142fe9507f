"""Hangs while being imported, like a model load waiting for a GPU (made by us for tests)."""

import time


def wait_for_gpu():
    while True:
        time.sleep(0.05)


wait_for_gpu()


def handler(job):
    return "unreachable"
