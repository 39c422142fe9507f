"""Checks before a deploy: will this worker survive (import probe, worker-check, containers)."""
