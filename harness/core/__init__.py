"""The protocol core: pure decisions, no I/O, no clock reads (times come in as arguments).

errors (one documented tree) apart from findings (verdicts); jobs and health (what the platform says);
shapes and sse (what an output or a stream holds); timing; polling; clock (the injectable time the
drivers use); waiting (the job-wait state machine), streaming (the stream accumulator) and wire (request
bodies, auth headers, HTTP status -> error) — the pieces both drivers (async clients, sync load driver) run.
"""

__version__ = "0.2.0"
