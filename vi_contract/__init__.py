"""The results contract that the writer (vi_sweeps) and the readers (analysis) both import: the
schema of a results folder, the store and its atomic writes, the per-trial files and their
consolidation into two tables, reading a folder of any schema version, and the lease that
names its driver. It imports neither torch nor Ray (nor vi_sweeps or analysis), so a reader
installs it without them; tests/test_layers.py holds it to that."""
