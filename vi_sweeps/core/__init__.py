"""The base every other part stands on: the one error a user fixes, name registries, result-key
declarations and plugin loading. Imports nothing of vi_sweeps above it, and neither torch nor
Ray."""
