"""The paper's EM case as a model family (vi_sweeps.gan.families holds the others)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from vi_sweeps.gan.declared import LOSS_NLL, ModelFamily


class EM(ModelFamily):
    """The paper's EM case: a Gaussian mixture (one component per mode) fitted by classic EM on
    a fixed draw of the data, one EM step per iteration. Initialised from random data points
    (k-means would solve the task before EM starts). A reference for reachable mode coverage.
    Not vectorised: the members of a pack are fitted one after the other. A model family like
    the others (the ModelFamily contract), without networks: the trial loop treats it alike."""

    iteration = 0  # set by the trial loop; EM's step does not depend on it

    def __init__(self, cfgs, data, device, gens):
        from sklearn.mixture import GaussianMixture  # costly at import (see datasets.digits_split): EM only

        self.alive = torch.ones(len(cfgs), dtype=torch.bool)
        self.xs = [data.sample(max(2000, c.batch_size), g).numpy().astype(np.float64) for c, g in zip(cfgs, gens, strict=True)]
        self.gmms = [GaussianMixture(n_components=data.n_modes, covariance_type="full", max_iter=1, warm_start=True,
                                     init_params="random_from_data", random_state=c.seed, reg_covar=1e-6) for c in cfgs]

    def train_iteration(self) -> dict[str, torch.Tensor]:
        from sklearn.exceptions import ConvergenceWarning

        nll = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for alive, gmm, x in zip(self.alive.tolist(), self.gmms, self.xs, strict=True):
                if alive:
                    gmm.fit(x)
                nll.append(-gmm.score(x) if alive else 0.0)
        return {LOSS_NLL: torch.tensor(nll)}

    def sample(self, n: int, gens: list[torch.Generator]) -> torch.Tensor:
        out = []
        for gmm, gen, x in zip(self.gmms, gens, self.xs, strict=True):
            if not hasattr(gmm, "means_"):  # a stand-in, frozen before its first fit: never evaluated
                out.append(torch.zeros(n, *x.shape[1:]))
                continue
            gmm.random_state = int(torch.randint(2**31 - 1, (1,), generator=gen))
            x, _ = gmm.sample(n)
            out.append(torch.from_numpy(x).float()[torch.randperm(n, generator=gen)])
        return torch.stack(out)

    def freeze(self, k: int) -> None:
        self.alive[k] = False

    def member_state(self, k: int) -> dict:
        """The fitted mixture as arrays and numbers (a checkpoint holds no pickled object)."""
        return {"gmm": {name: plain(value) for name, value in vars(self.gmms[k]).items() if name.endswith("_")}}

    def load_member_states(self, states: list[dict]) -> None:
        for gmm, state in zip(self.gmms, states, strict=True):
            for name, value in state["gmm"].items():
                setattr(gmm, name, value.numpy() if isinstance(value, torch.Tensor) else value)


def plain(value):
    """A fitted attribute as a checkpoint can hold it: arrays as tensors, numpy scalars as
    Python numbers (exact), lists element by element."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
