"""An example vi-sweeps plugin: a new stabiliser and a new 2-D data set, registered from
outside the package. Load it with `plugins: [drift_and_spiral.py]` in a study (see
study.yaml beside this file), `--plugin drift_and_spiral.py`, or as an installed package's
`vi_sweeps.plugins` entry point.

- stabiliser `drift` (Karras et al. 2018, ProGAN's drift penalty): drift * E D(x)^2 on real
  data, which keeps D's outputs from drifting far from 0 (useful with the Wasserstein loss).
  It declares its own weight key, `drift`, which `vi-sweep trial --list-keys` then lists.
- data set `spiral6`: 6 Gaussians (sigma 0.05) along a spiral, radii 0.5 to 3; evaluated by
  vi-sweeps' own mixture metrics (modes, hq_frac, fd_2d, ...).
"""

import math

import torch

from vi_sweeps.config import register_key
from vi_sweeps.datasets import DATASETS, DatasetSpec, Mixture, describe_mixture
from vi_sweeps.stabilisers import STABILISERS, Stabiliser

register_key("drift", 0.0, "stabiliser drift (plugin): drift * E D(x)^2 on real data (Karras et al. 2018: 0.001); 0: off")


def drift_penalty(step):
    """(K,) per member: the mean squared logit on the real batch."""
    return step.family.cfg.drift * step.real_logits.flatten(1).pow(2).mean(1)


STABILISERS.register("drift", spec=Stabiliser(("drift",), "ProGAN's drift penalty on D's real logits",
                                              d_penalty=drift_penalty))


@DATASETS.register("spiral6", spec=DatasetSpec("vector", "mixture", describe=describe_mixture))
def spiral6(cfg) -> Mixture:
    t = torch.linspace(0, 1, 6)
    radius, angle = 0.5 + 2.5 * t, 3 * math.pi * t
    return Mixture(torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1), 0.05)
