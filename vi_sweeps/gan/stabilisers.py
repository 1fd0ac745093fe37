"""Stabilisers of GAN training, keyed by name: each is a set of config keys (its weights) and
what it changes, so that a study can set the paper's anchor term beside the ones researchers
use (as compare_gan's penalty_lib and StudioGAN's regularisers).

Three kinds, each called from one place of the GAN family (vi_sweeps.gan.families):
- a D-side penalty, added to D's loss in the D step: `d_penalty(step) -> (K,)`, with `step`
  the D step's inputs and logits (`DStep`); r1, r2, gp, and plugins' penalties;
- a G-side penalty, added to G's loss in the G step: `g_penalty(step) -> (K,)` (`GStep`); the
  paper's anchor term is the G loss itself (losses.gan_g_loss, weight `lam`), plugins add more;
- a change of the networks or optimisers: sn (a constructor argument of every architecture's
  D), ema (an averaged copy of G that evaluation samples), ttur (D's and G's learning rates).
A stabiliser is active when any of its keys is away from its default; several combine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from vi_sweeps.core.registry import Registry
from vi_sweeps.gan import losses

Tensor = torch.Tensor


@dataclass
class DStep:
    """One D update's inputs and D's logits on them, member-major (K, B, ...). Random draws use
    `family.gens`, the members' random-number generators (one torch.Generator per member; see gp):
    a draw from torch's global generator is refused (own_draws)."""

    family: object
    D: Callable
    real: Tensor
    fake: Tensor
    real_logits: Tensor
    fake_logits: Tensor


@dataclass
class GStep:
    """One G update's noise, G's samples and D's logits on them (member-major, as DStep)."""

    family: object
    D: Callable
    z: Tensor
    fake: Tensor
    fake_logits: Tensor


@dataclass(frozen=True)
class Stabiliser:
    keys: tuple[str, ...]  # its config keys; it is active when one is away from its default
    doc: str
    d_penalty: Callable[[DStep], Tensor] | None = None
    g_penalty: Callable[[GStep], Tensor] | None = None
    grad_of: tuple[str, ...] = field(default=())  # D-step inputs the penalty differentiates D's logits by

    def __post_init__(self):
        if not self.keys or not all(isinstance(k, str) for k in self.keys):
            raise TypeError("a stabiliser names its config keys (keys=('weight',))")
        if not set(self.grad_of) <= {"real", "fake"}:
            raise TypeError(f"grad_of: 'real' and/or 'fake', not {self.grad_of}")

    def active(self, cfg) -> bool:
        return any(not cfg.at_default(k) for k in self.keys)


STABILISERS = Registry("stabiliser", spec=Stabiliser)


def gp(step: DStep) -> Tensor:
    """Interpolates between each member's real and generated batch, one uniform weight per
    sample drawn from the member's own generator, and the penalty of D's gradient there."""
    fam = step.family
    shape = (step.real.shape[1],) + (1,) * (step.real.dim() - 2)
    eps = torch.stack([torch.rand(shape, generator=g) for g in fam.gens]).to(step.real.device)
    x_hat = (eps * step.real.detach() + (1 - eps) * step.fake.detach()).requires_grad_(True)
    return fam.cfg.gp * losses.gp_penalty(step.D(x_hat), x_hat)


STABILISERS.register("anchor", spec=Stabiliser(
    ("lam", "penalty"), "the paper's anchor term: lam * ||G(z) - G_old(z)||^2 in G's loss (losses.gan_g_loss)"))
STABILISERS.register("r1", spec=Stabiliser(
    ("r1",), "R1: r1/2 * E||grad D(x)||^2 on real data", grad_of=("real",),
    d_penalty=lambda s: s.family.cfg.r1 * losses.r1_penalty(s.real_logits, s.real)))
STABILISERS.register("r2", spec=Stabiliser(
    ("r2",), "R2: r2/2 * E||grad D(G(z))||^2 on generated data", grad_of=("fake",),
    d_penalty=lambda s: s.family.cfg.r2 * losses.r1_penalty(s.fake_logits, s.fake)))
STABILISERS.register("gp", spec=Stabiliser(("gp",), "WGAN-GP: gp * E(||grad D(x_hat)|| - 1)^2", d_penalty=gp))
STABILISERS.register("sn", spec=Stabiliser(("sn",), "spectral normalisation of D's layers (architectures.SpectralNorm)"))
STABILISERS.register("ema", spec=Stabiliser(("ema", "ema_start"), "an exponential moving average of G's weights, sampled at evaluation"))
STABILISERS.register("ttur", spec=Stabiliser(("lr_d", "lr_g"), "two time-scale update rule: D's and G's own learning rates"))


def active(cfg) -> list[tuple[str, Stabiliser]]:
    """(name, spec) of every stabiliser the trial turns on."""
    return [(name, STABILISERS.meta(name)) for name in STABILISERS.names() if STABILISERS.meta(name).active(cfg)]


def per_member(name: str, penalty: Tensor, k: int) -> Tensor:
    """A penalty must be one value per member: a scalar would mix the members of a pack."""
    if tuple(penalty.shape) != (k,):
        raise ValueError(f"stabiliser {name}: its penalty has shape {tuple(penalty.shape)}, not one value per member "
                         f"({k},); reduce over everything but the first (member) dimension")
    return penalty


def _global_states(device: torch.device) -> list[Tensor]:
    states = [torch.random.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def own_draws(name: str, penalty: Callable, step: DStep | GStep) -> Tensor:
    """The penalty of `step`, refused if it drew from torch's global generator (torch.rand_like,
    torch.randn without generator=): a packed draw from it depends on the pack's size and the
    member's place, so `vi-sweep trial` could not reproduce a sweep's trial (issue 39: loss/d 5.19
    against 3.96 at step 100 for a DRAGAN penalty drawing torch.rand_like in packs of 3)."""
    device = step.fake.device
    before = _global_states(device)
    out = penalty(step)
    if not all(torch.equal(a, b) for a, b in zip(before, _global_states(device), strict=True)):
        raise ValueError(f"stabiliser {name}: its penalty drew from torch's global random generator (torch.rand_like, "
                         "torch.randn without generator=...), which makes a trial's rows depend on its pack; draw each "
                         "member's numbers from its own generator, step.family.gens[k] (as stabilisers.gp does)")
    return out


def stabiliser_keys() -> tuple[str, ...]:
    """Every stabiliser's keys but the anchor's (which the AAE family reads too)."""
    return tuple(k for name in STABILISERS.names() if name != "anchor" for k in STABILISERS.meta(name).keys)
