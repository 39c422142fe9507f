"""What users run to check an endpoint: devai tasks and their checks, streaming checks, the sandbox for
model-written code, cassette replay, result tables and JUnit, the main job's probes."""
