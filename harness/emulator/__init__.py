"""A faithful local RunPod Serverless emulator that runs real handler functions.

Unlike runpod-python's ``--rp_serve_api`` test server, it serves every queue route (GET and POST
status, /stream with holds, /cancel that really cancels, /retry, /purge-queue, /health with counts
that match reality), runs jobs eagerly on workers that scale 0..N with cold starts, idle timeouts
and FlashBoot-like warm restarts, measures delayTime/executionTime from real timestamps, and
injects the faults seen in the field (zombie workers, crash at import, 429 storms, ...).
"""

from __future__ import annotations

from harness.emulator.config import ColdStart, EmulatorConfig, HttpFault, WorkerFaults, load_config
from harness.emulator.serving import Emulator

__all__ = ["ColdStart", "Emulator", "EmulatorConfig", "HttpFault", "WorkerFaults", "load_config"]
