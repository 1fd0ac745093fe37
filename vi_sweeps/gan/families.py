"""Model families, keyed by the names study files use. Each trains a pack of K members (the
seeds of one condition; K = 1 for a single trial) one iteration at a time with the pure losses
of `vi_sweeps.gan.losses`, and draws samples for evaluation. Each family declares the loss keys it
reports; a row may carry no other.

GAN iteration (the author's code, exactly): `d_steps` D updates, each on a fresh real batch and
fresh z; then the G phase: `g_steps` chunks of z drawn and their anchors G(z) computed once, at
the start of the phase, without gradient; then for each chunk `g_repeats` G updates on the same
z, pulled towards the fixed anchor. On a chunk's first update G(z) == anchor, so the
regulariser acts from the second update on.

Packing (vi_sweeps.gan.packing): member k is built from seed k exactly as a single trial would be,
draws its batches and noise from its own generator, and its loss is summed with the others', so
one Adam over the stacked parameters updates each member exactly as alone. A member that
diverges is frozen (its parameters and optimiser state zeroed, its losses masked), so it stops
updating and cannot disturb the others.
"""

from __future__ import annotations

import copy
import io
from contextlib import contextmanager

import torch
from torch import nn

from vi_sweeps.gan import losses, stabilisers
from vi_sweeps.gan.architectures import DataParameter, Nets, build_nets
from vi_sweeps.gan.compiled import CompiledGAN

# the registry, the loss keys and the declarations of the built-in families, torch-free
from vi_sweeps.gan.declared import (  # noqa: F401 - their former home
    LOSS_D,
    LOSS_G,
    LOSS_KL,
    LOSS_NLL,
    LOSS_REC,
    LOSS_REG,
    OBJECTIVES,
    ModelFamily,
    ObjectiveSpec,
)
from vi_sweeps.gan.em import EM  # noqa: F401 - its former home
from vi_sweeps.gan.packing import load_members, member_state, pack


@contextmanager
def frozen(module: nn.Module):
    """No parameter gradients for `module` (the other player's update only needs its input
    gradients); its BatchNorm still runs in training mode, as in the author's code."""
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Family(ModelFamily):
    """The families of networks (GAN, VAE, AAE, ALI, and plugins'): K members' networks
    packed, one Adam per player, per-member draws. (EM implements ModelFamily without networks.)"""

    def __init__(self, cfgs, data, device: torch.device, gens: list[torch.Generator]):
        self.cfgs, self.cfg, self.data, self.device, self.gens = cfgs, cfgs[0], data, device, gens
        members = []
        for cfg in cfgs:
            torch.manual_seed(cfg.seed)  # each member initialised as its single trial would be
            members.append(self.networks(build_nets(cfg, data.shape)))
        self.modules: dict[str, nn.Module] = {name: pack([m[name] for m in members]).to(device)
                                              for name in members[0]}
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self.alive = torch.ones(len(cfgs), dtype=torch.bool, device=device)
        self.iteration = 0  # iterations done before the one train_iteration runs (set by the trial loop)

    def networks(self, nets: Nets) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimise(self, name: str, *modules: str, lr: float | None = None) -> None:
        c = self.cfg
        params = [p for m in modules for p in self.modules[m].parameters()]
        # fused: one kernel per step over all parameters, ~4x faster than the per-tensor loop
        self.optims[name] = torch.optim.Adam(params, lr=lr or c.lr, betas=(c.beta1, c.beta2), fused=True)

    def step(self, name: str, member_losses: torch.Tensor) -> None:
        opt = self.optims[name]
        opt.zero_grad(set_to_none=True)
        torch.where(self.alive, member_losses, 0.0).sum().backward()
        opt.step()

    def noise(self, n: int, gens: list[torch.Generator] | None = None) -> torch.Tensor:
        return torch.stack([torch.randn(n, self.cfg.z_dim, generator=g) for g in gens or self.gens]).to(self.device)

    def real(self, n: int) -> torch.Tensor:
        return torch.stack([self.data.sample(n, g, self.device) for g in self.gens])

    sampler = "G"  # the module evaluation samples (an averaged copy of G with ema)

    @torch.no_grad()
    def sample(self, n: int, gens: list[torch.Generator]) -> torch.Tensor:
        """(K, n, *shape) samples in eval mode (BN running statistics), on the trial's device;
        member k draws its noise from gens[k] in chunks of 1000."""
        g = self.modules[self.sampler]
        g.eval()
        try:
            out = [g(self.noise(min(1000, n - i), gens)) for i in range(0, n, 1000)]
        finally:
            g.train()
        return torch.cat(out, 1)

    def freeze(self, k: int) -> None:
        """Member k diverged: zero its parameters, buffers and Adam state, mask its losses."""
        self.alive[k] = False
        with torch.no_grad():
            for m in self.modules.values():
                for t in [*m.parameters(), *m.buffers()]:
                    t[k] = 0
            for opt in self.optims.values():
                for state in opt.state.values():
                    for key in ("exp_avg", "exp_avg_sq"):
                        state[key][k] = 0

    def member_state(self, k: int) -> dict:
        optims = {}
        for name, opt in self.optims.items():
            params = [p for group in opt.param_groups for p in group["params"]]
            optims[name] = [{key: (v if key == "step" else v[k].clone()) for key, v in opt.state[p].items()}
                            for p in params]
        return {"modules": {name: member_state(m, k) for name, m in self.modules.items()}, "optims": optims}

    def load_member_states(self, states: list[dict]) -> None:
        for name, m in self.modules.items():
            load_members(m, [s["modules"][name] for s in states])
        for name, opt in self.optims.items():
            params = [p for group in opt.param_groups for p in group["params"]]
            for i, p in enumerate(params):
                per_member = [s["optims"][name][i] for s in states]
                ref = next((m for m in per_member if m), None)  # a stand-in that never stepped has none
                if ref is not None:  # fused Adam reads `step` on the parameters' device, as float32
                    opt.state[p] = {key: (ref[key].to(p.device, torch.float32) if key == "step" else
                                          torch.stack([m[key] if m else torch.zeros_like(ref[key])
                                                       for m in per_member]).to(p.device))
                                    for key in ref}


class GAN(Family):
    """`loss` from losses.GAN_LOSSES; the stabilisers of vi_sweeps.gan.stabilisers: D-side penalties
    added in the D step, G-side ones in the G step (the anchor term is the G loss's own), sn in
    D's constructor, ema an averaged G that evaluation samples, ttur the learning rates."""

    gan_keys = True  # the GAN loss and the stabilisers' keys apply (to a plugin's subclass too)
    WEIGHTS = ("lam", "r1", "r2", "gp")  # loss weights read through weight(): tensors in the compiled step
    weights: dict | None = None  # set by the compiled step (CompiledGAN)

    def weight(self, key: str):
        """A loss weight: the config's number, or in the compiled step a tensor holding it, so
        packs that differ in it share one graph (a plugin's penalty that reads its weight from
        cfg compiles once per value of it)."""
        return self.weights[key] if self.weights is not None else getattr(self.cfg, key)

    def networks(self, nets: Nets) -> dict[str, nn.Module]:
        return {"G": nets.generator(), "D": nets.critic(sn=self.cfg.sn)}

    def __init__(self, *args):
        super().__init__(*args)
        c = self.cfg
        self.optimise("G", "G", lr=c.lr_g)
        self.optimise("D", "D", lr=c.lr_d)
        on = stabilisers.active(c)
        self.d_penalties = [(name, s) for name, s in on if s.d_penalty is not None]
        self.g_penalties = [(name, s) for name, s in on if s.g_penalty is not None]
        self.grad_of = {k for _, s in self.d_penalties for k in s.grad_of}
        if c.ema > 0:
            self.modules["G_ema"] = copy.deepcopy(self.modules["G"]).requires_grad_(False)
            self.sampler = "G_ema"

    def d_loss(self, x: torch.Tensor, fake: torch.Tensor, probes: dict | None = None,
               drawn: torch.Tensor | None = None) -> torch.Tensor:
        """D's loss and its penalties; `probes` and `drawn` from the compiled step (CompiledGAN)."""
        D = self.modules["D"]
        x, fake = (stabilisers.differentiable(t, name, probes) if name in self.grad_of else t
                   for name, t in (("real", x), ("fake", fake)))
        real_logits, fake_logits = D(x), D(fake)
        loss = losses.gan_d_loss(real_logits, fake_logits, self.cfg.loss)
        if self.d_penalties:
            step = stabilisers.DStep(self, D, x, fake, real_logits, fake_logits, drawn=drawn, probes=probes)
            for name, s in self.d_penalties:
                loss = loss + stabilisers.per_member(name, stabilisers.own_draws(name, s.d_penalty, step), len(self.cfgs))
        return loss

    def g_loss(self, z: torch.Tensor, anchor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        G, D, c = self.modules["G"], self.modules["D"], self.cfg
        fake = G(z)
        fake_logits = D(fake)
        total, adv, reg = losses.gan_g_loss(fake_logits, fake, anchor, self.weight("lam"), c.penalty, c.loss)
        if self.g_penalties:
            step = stabilisers.GStep(self, D, z, fake, fake_logits)
            for name, s in self.g_penalties:
                total = total + stabilisers.per_member(name, stabilisers.own_draws(name, s.g_penalty, step), len(self.cfgs))
        return total, adv, reg

    @torch.no_grad()
    def average(self, decay: torch.Tensor | None = None) -> None:
        """G_ema <- ema * G_ema + (1 - ema) * G after each G update from iteration ema_start on
        (before it G_ema is G: StudioGAN's ema_start); buffers (BN statistics) copied. The
        compiled step gives the decay as a tensor (CompiledGAN.fill)."""
        if "G_ema" not in self.modules:
            return
        G, avg = self.modules["G"], self.modules["G_ema"]
        if decay is None:
            decay = self.cfg.ema if self.iteration >= self.cfg.ema_start else 0.0
            for a, p in zip(avg.parameters(), G.parameters(), strict=True):
                a.mul_(decay).add_(p, alpha=1 - decay)
        else:
            for a, p in zip(avg.parameters(), G.parameters(), strict=True):
                a.mul_(decay).add_(p * (1 - decay))
        for a, b in zip(avg.buffers(), G.buffers(), strict=True):
            a.copy_(b)

    def load_member_states(self, states: list[dict]) -> None:
        super().load_member_states(states)
        self.compiled = None  # rebuilt from the loaded optimiser state

    compiled = None  # the CompiledGAN of a `compile: true` trial, built at its first iteration

    def train_iteration(self) -> dict[str, torch.Tensor]:
        if self.cfg.compile:
            if self.compiled is None:
                self.compiled = CompiledGAN(self)
            d_loss, adv, reg = self.compiled.step()
            return {LOSS_D: d_loss, LOSS_G: adv, LOSS_REG: reg}
        c, G, D = self.cfg, self.modules["G"], self.modules["D"]
        for _ in range(c.d_steps):
            x, z = self.real(c.batch_size), self.noise(c.batch_size)
            with torch.no_grad():
                fake = G(z)
            d_loss = self.d_loss(x, fake)
            self.step("D", d_loss)
        zs = [self.noise(c.batch_size) for _ in range(c.g_steps)]
        with torch.no_grad():
            anchors = [G(z) for z in zs]
        with frozen(D):
            for z, anchor in zip(zs, anchors, strict=True):
                for _ in range(c.g_repeats):
                    g_loss, adv, reg = self.g_loss(z, anchor)
                    self.step("G", g_loss)
                    self.average()
        return {LOSS_D: d_loss.detach(), LOSS_G: adv.detach(), LOSS_REG: reg.detach()}


class VAE(Family):
    def networks(self, nets: Nets) -> dict[str, nn.Module]:
        return {"E": nets.critic(2 * self.cfg.z_dim), "G": nets.generator(), "x_logvar": DataParameter(self.data.shape)}

    def __init__(self, *args):
        super().__init__(*args)
        self.optimise("vae", "E", "G", "x_logvar")

    def train_iteration(self) -> dict[str, torch.Tensor]:
        E, G = self.modules["E"], self.modules["G"]
        x = self.real(self.cfg.batch_size)
        mu, logvar = E(x).chunk(2, dim=-1)
        eps = torch.stack([torch.randn(mu.shape[1:], generator=g) for g in self.gens]).to(self.device)
        z = mu + (0.5 * logvar).exp() * eps
        loss, nll, kl = losses.vae_loss(x, G(z), self.modules["x_logvar"](), mu, logvar)
        self.step("vae", loss)
        return {LOSS_REC: nll.detach(), LOSS_KL: kl.detach()}


class AAE(Family):
    def networks(self, nets: Nets) -> dict[str, nn.Module]:
        return {"E": nets.critic(self.cfg.z_dim), "G": nets.generator(), "D": nets.latent_critic()}

    def __init__(self, *args):
        super().__init__(*args)
        self.optimise("D", "D")
        self.optimise("EG", "E", "G")

    def train_iteration(self) -> dict[str, torch.Tensor]:
        c, E, G, D = self.cfg, self.modules["E"], self.modules["G"], self.modules["D"]
        for _ in range(c.d_steps):
            x = self.real(c.batch_size)
            with torch.no_grad():
                code = E(x)
            d_loss = losses.aae_d_loss(D(code), D(self.noise(c.batch_size)))
            self.step("D", d_loss)
        with frozen(D):
            for _ in range(c.g_steps):
                x = self.real(c.batch_size)
                code = E(x)
                total, adv, rec = losses.aae_ge_loss(D(code), x, G(code), c.lam, c.penalty)
                self.step("EG", total)
        return {LOSS_D: d_loss.detach(), LOSS_G: adv.detach(), LOSS_REC: rec.detach()}


class ALI(Family):
    def networks(self, nets: Nets) -> dict[str, nn.Module]:
        return {"E": nets.critic(self.cfg.z_dim), "G": nets.generator(), "D": nets.joint_critic()}

    def __init__(self, *args):
        super().__init__(*args)
        self.optimise("D", "D")
        self.optimise("EG", "E", "G")

    def train_iteration(self) -> dict[str, torch.Tensor]:
        c, E, G, D = self.cfg, self.modules["E"], self.modules["G"], self.modules["D"]
        for _ in range(c.d_steps):
            x, z = self.real(c.batch_size), self.noise(c.batch_size)
            with torch.no_grad():
                code, fake = E(x), G(z)
            d_loss = losses.ali_d_loss(D(x, code), D(fake, z))
            self.step("D", d_loss)
        with frozen(D):
            for _ in range(c.g_steps):
                x, z = self.real(c.batch_size), self.noise(c.batch_size)
                ge_loss = losses.ali_ge_loss(D(x, E(x)), D(G(z), z), c.ali_loss)
                self.step("EG", ge_loss)
        return {LOSS_D: d_loss.detach(), LOSS_G: ge_loss.detach()}


def build_objective(cfgs, data, device, gens) -> ModelFamily:
    return OBJECTIVES.get(cfgs[0].model)(cfgs, data, device, gens)


def to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def from_bytes(blob: bytes):
    """A checkpoint: tensors and plain containers only. A file that holds anything else (a
    pickled object, whose loading could run code) raises, and the runner quarantines it."""
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
