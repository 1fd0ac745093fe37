"""vi-sweeps: sweeps and ablations of the generative models in Su (2018)."""

__version__ = "0.1.0"

from vi_sweeps._moved import install as _install_former_names

_install_former_names()
