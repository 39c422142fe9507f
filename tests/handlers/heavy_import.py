"""Heavy work at import, like field report 002 (made by us for tests): opens a weights file, binds a
server socket, looks up a host, and spends ~0.6 s on one line."""

import contextlib
import os
import socket
import tempfile
import time

WEIGHTS = os.path.join(tempfile.gettempdir(), "devai-test-model.safetensors")
with open(WEIGHTS, "wb") as f:  # "loading the model" at import
    f.write(b"\0" * 16)

SERVER = socket.socket()
SERVER.bind(("127.0.0.1", 0))  # an app server created at import

with contextlib.suppress(OSError):
    socket.getaddrinfo("localhost", 80)

time.sleep(0.6)  # slow initialisation


def handler(job):
    return {"generated_text": "ok"}
