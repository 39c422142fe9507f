"""The report kit, below the rooms that use it (conformance, load, preflight): how files and lines leave the
process — scrubbed, whole or not at all, a full disk said in one line."""
