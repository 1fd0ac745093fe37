import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """One reference-classifier cache per test session (trained once, ~10 s)."""
    os.environ.setdefault("VI_SWEEPS_CACHE", str(tmp_path_factory.mktemp("cache")))


def tiny(**overrides):
    """The smallest config that exercises the real code paths."""
    from vi_sweeps.config import TrialConfig

    values = dict(iterations=4, eval_every=2, eval_samples=200, batch_size=16, hidden=16,
                  mlp_layers=2, width=8, z_dim=4)
    values.update(overrides)
    return TrialConfig(**values)
