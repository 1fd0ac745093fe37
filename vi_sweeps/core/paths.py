"""Where a node keeps what it computes once for every trial it runs (the decoded image cache,
the digits classifier, FID's reference statistics, the compiled steps' inductor cache)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The node's cache directory: VI_SWEEPS_CACHE, else ~/.cache/vi-sweeps."""
    return Path(os.environ.get("VI_SWEEPS_CACHE", Path.home() / ".cache" / "vi-sweeps"))
