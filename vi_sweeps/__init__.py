"""vi-sweeps: sweeps and ablations of the generative models in Su (2018)."""

__version__ = "0.1.0"
