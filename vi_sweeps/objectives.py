"""Model families, keyed by the names study files use. Each trains one iteration at a time
with the pure losses of `vi_sweeps.losses` and draws samples for evaluation.

GAN iteration (the author's code, exactly): `d_steps` D updates, each on a fresh real batch and
fresh z; then the G phase: `g_steps` chunks of z drawn and their anchors G(z) computed once, at
the start of the phase, without gradient; then for each chunk `g_repeats` G updates on the same
z, pulled towards the fixed anchor. On a chunk's first update G(z) == anchor, so the
regulariser acts from the second update on.
"""

from __future__ import annotations

import io
import pickle
import warnings

import numpy as np
import torch
from torch import nn

from vi_sweeps import losses
from vi_sweeps.architectures import Nets
from vi_sweeps.registry import Registry

OBJECTIVES = Registry("model")


class Family:
    """Shared plumbing: networks, one Adam per player, noise and data draws."""

    def __init__(self, cfg, data, device: torch.device, gen: torch.Generator):
        self.cfg, self.data, self.device, self.gen = cfg, data, device, gen
        self.nets = Nets(cfg, data.shape)
        self.modules: dict[str, nn.Module] = {}
        self.optims: dict[str, torch.optim.Optimizer] = {}

    def add(self, **modules: nn.Module) -> None:
        for name, m in modules.items():
            self.modules[name] = m.to(self.device)

    def optimise(self, name: str, *params) -> None:
        c = self.cfg
        self.optims[name] = torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2))

    def step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optims[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def noise(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.cfg.z_dim, generator=gen or self.gen).to(self.device)

    def real(self, n: int) -> torch.Tensor:
        return self.data.sample(n, self.gen).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """Samples from the generator in eval mode (BN running statistics), on the CPU."""
        g = self.modules["G"]
        g.eval()
        try:
            out = [g(self.noise(min(1000, n - i), gen)).cpu() for i in range(0, n, 1000)]
        finally:
            g.train()
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optims": {k: o.state_dict() for k, o in self.optims.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optims.items():
            o.load_state_dict(state["optims"][k])


@OBJECTIVES.register("gan")
class GAN(Family):
    def __init__(self, *args):
        super().__init__(*args)
        self.add(G=self.nets.generator(), D=self.nets.critic())
        self.optimise("G", *self.modules["G"].parameters())
        self.optimise("D", *self.modules["D"].parameters())

    def train_iteration(self) -> dict[str, torch.Tensor]:
        c, G, D = self.cfg, self.modules["G"], self.modules["D"]
        for _ in range(c.d_steps):
            x, z = self.real(c.batch_size), self.noise(c.batch_size)
            with torch.no_grad():
                fake = G(z)
            d_loss = losses.gan_d_loss(D(x), D(fake))
            self.step("D", d_loss)
        zs = [self.noise(c.batch_size) for _ in range(c.g_steps)]
        with torch.no_grad():
            anchors = [G(z) for z in zs]
        for z, anchor in zip(zs, anchors, strict=True):
            for _ in range(c.g_repeats):
                fake = G(z)
                g_loss, adv, reg = losses.gan_g_loss(D(fake), fake, anchor, c.lam, c.penalty)
                self.step("G", g_loss)
        return {"loss/d": d_loss.detach(), "loss/g": adv.detach(), "loss/reg": reg.detach()}


@OBJECTIVES.register("vae")
class VAE(Family):
    def __init__(self, *args):
        super().__init__(*args)
        self.add(E=self.nets.critic(2 * self.cfg.z_dim), G=self.nets.generator())
        self.x_logvar = nn.Parameter(torch.zeros(self.data.shape, device=self.device))
        self.modules["x_logvar"] = nn.ParameterList([self.x_logvar])
        self.optimise("vae", *self.modules["E"].parameters(), *self.modules["G"].parameters(), self.x_logvar)

    def train_iteration(self) -> dict[str, torch.Tensor]:
        E, G = self.modules["E"], self.modules["G"]
        x = self.real(self.cfg.batch_size)
        mu, logvar = E(x).chunk(2, dim=1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=self.gen).to(self.device)
        loss, nll, kl = losses.vae_loss(x, G(z), self.x_logvar, mu, logvar)
        self.step("vae", loss)
        return {"loss/rec": nll.detach(), "loss/kl": kl.detach()}


@OBJECTIVES.register("aae")
class AAE(Family):
    def __init__(self, *args):
        super().__init__(*args)
        self.add(E=self.nets.critic(self.cfg.z_dim), G=self.nets.generator(), D=self.nets.latent_critic())
        self.optimise("D", *self.modules["D"].parameters())
        self.optimise("EG", *self.modules["E"].parameters(), *self.modules["G"].parameters())

    def train_iteration(self) -> dict[str, torch.Tensor]:
        c, E, G, D = self.cfg, self.modules["E"], self.modules["G"], self.modules["D"]
        for _ in range(c.d_steps):
            x = self.real(c.batch_size)
            with torch.no_grad():
                code = E(x)
            d_loss = losses.aae_d_loss(D(code), D(self.noise(c.batch_size)))
            self.step("D", d_loss)
        for _ in range(c.g_steps):
            x = self.real(c.batch_size)
            code = E(x)
            total, adv, rec = losses.aae_ge_loss(D(code), x, G(code), c.lam, c.penalty)
            self.step("EG", total)
        return {"loss/d": d_loss.detach(), "loss/g": adv.detach(), "loss/rec": rec.detach()}


@OBJECTIVES.register("ali")
class ALI(Family):
    def __init__(self, *args):
        super().__init__(*args)
        self.add(E=self.nets.critic(self.cfg.z_dim), G=self.nets.generator(), D=self.nets.joint_critic())
        self.optimise("D", *self.modules["D"].parameters())
        self.optimise("EG", *self.modules["E"].parameters(), *self.modules["G"].parameters())

    def train_iteration(self) -> dict[str, torch.Tensor]:
        c, E, G, D = self.cfg, self.modules["E"], self.modules["G"], self.modules["D"]
        for _ in range(c.d_steps):
            x, z = self.real(c.batch_size), self.noise(c.batch_size)
            with torch.no_grad():
                code, fake = E(x), G(z)
            d_loss = losses.ali_d_loss(D(x, code), D(fake, z))
            self.step("D", d_loss)
        for _ in range(c.g_steps):
            x, z = self.real(c.batch_size), self.noise(c.batch_size)
            ge_loss = losses.ali_ge_loss(D(x, E(x)), D(G(z), z), c.ali_loss)
            self.step("EG", ge_loss)
        return {"loss/d": d_loss.detach(), "loss/g": ge_loss.detach()}


@OBJECTIVES.register("em", vector_only=True)
class EM:
    """The paper's EM case: a Gaussian mixture (one component per mode) fitted by classic EM on
    a fixed draw of the data, one EM step per iteration. Initialised from random data points
    (k-means would solve the task before EM starts). A reference for reachable mode coverage."""

    def __init__(self, cfg, data, device, gen):
        from sklearn.mixture import GaussianMixture

        self.cfg, self.data = cfg, data
        self.x = data.sample(max(2000, cfg.batch_size), gen).numpy().astype(np.float64)
        self.gmm = GaussianMixture(
            n_components=data.n_modes, covariance_type="full", max_iter=1, warm_start=True,
            init_params="random_from_data", random_state=cfg.seed, reg_covar=1e-6)

    def train_iteration(self) -> dict[str, torch.Tensor]:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gmm.fit(self.x)
        return {"loss/nll": torch.tensor(-self.gmm.score(self.x))}

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        self.gmm.random_state = int(torch.randint(2**31 - 1, (1,), generator=gen))
        x, _ = self.gmm.sample(n)
        perm = torch.randperm(n, generator=gen)
        return torch.from_numpy(x).float()[perm]

    def state_dict(self) -> dict:
        return {"gmm": pickle.dumps(self.gmm)}

    def load_state_dict(self, state: dict) -> None:
        self.gmm = pickle.loads(state["gmm"])


def build_objective(cfg, data, device, gen):
    return OBJECTIVES.get(cfg.model)(cfg, data, device, gen)


def to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def from_bytes(blob: bytes):
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
