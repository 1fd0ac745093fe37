"""vi-sweeps tests (a regular package, so that a dependency that ships a top-level `tests` cannot shadow it)."""
