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
A stabiliser is active when any of its keys is away from its default; several combine. The
built-in ones and their keys are declared in vi_sweeps.gan.declared (no torch); their
penalties are the functions here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vi_sweeps.gan import losses

# the registry, the spec, and the declarations of the built-in stabilisers with their keys (torch-free)
from vi_sweeps.gan.declared import STABILISERS, Stabiliser, active, stabiliser_keys  # noqa: F401 - their former home

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
    drawn: Tensor | None = None  # compiled: this update's uniform draws, made before the graph (gp)
    probes: dict | None = None  # compiled: zero leaves that give an input a gradient (CompiledGAN.probe)

    def uniform(self) -> Tensor:
        """One uniform weight per sample of each member's batch, (K, B, 1, ...), from the
        member's own generator (compiled: drawn before the graph, in the same order)."""
        if self.drawn is not None:  # once: gp's own draws, made for it alone (CompiledGAN.draws)
            drawn, self.drawn = self.drawn, None
            return drawn
        if torch.compiler.is_compiling():
            raise ValueError("compile: a penalty asked for uniform draws the compiled step did not make (it draws "
                             "WGAN-GP's only); set compile: false")
        return uniform_draws(self.family.gens, self.real)

    def differentiable(self, t: Tensor, name: str) -> Tensor:
        """`t` as an input D's gradient can be taken by (eager: a leaf that requires grad;
        compiled: `t` plus a zero leaf, since a graph cannot flip the flag)."""
        return differentiable(t, name, self.probes)


def differentiable(t: Tensor, name: str, probes: dict | None) -> Tensor:
    return t.requires_grad_(True) if probes is None else t + probes[name]


def uniform_draws(gens: list[torch.Generator], like: Tensor) -> Tensor:
    shape = (like.shape[1],) + (1,) * (like.dim() - 2)
    return torch.stack([torch.rand(shape, generator=g) for g in gens]).to(like.device)


@dataclass
class GStep:
    """One G update's noise, G's samples and D's logits on them (member-major, as DStep)."""

    family: object
    D: Callable
    z: Tensor
    fake: Tensor
    fake_logits: Tensor


def r1(step: DStep) -> Tensor:
    return step.family.weight("r1") * losses.r1_penalty(step.real_logits, step.real)


def r2(step: DStep) -> Tensor:
    return step.family.weight("r2") * losses.r1_penalty(step.fake_logits, step.fake)


def gp(step: DStep) -> Tensor:
    """Interpolates between each member's real and generated batch, one uniform weight per
    sample drawn from the member's own generator, and the penalty of D's gradient there."""
    eps = step.uniform()
    x_hat = step.differentiable(eps * step.real.detach() + (1 - eps) * step.fake.detach(), "gp")
    return step.family.weight("gp") * losses.gp_penalty(step.D(x_hat), x_hat)


def per_member(name: str, penalty: Tensor, k: int) -> Tensor:
    """A penalty must be one value per member: a scalar would mix the members of a pack."""
    if tuple(penalty.shape) != (k,):
        raise ValueError(f"stabiliser {name}: its penalty has shape {tuple(penalty.shape)}, not one value per member "
                         f"({k},); reduce over everything but the first (member) dimension")
    return penalty


def global_states(device: torch.device) -> list[Tensor]:
    states = [torch.random.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def same_states(a: list[Tensor], b: list[Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def own_draws(name: str, penalty: Callable, step: DStep | GStep) -> Tensor:
    """The penalty of `step`, refused if it drew from torch's global generator (torch.rand_like,
    torch.randn without generator=): a packed draw from it depends on the pack's size and the
    member's place, so `vi-sweep trial` could not reproduce a sweep's trial (issue 39: loss/d 5.19
    against 3.96 at step 100 for a DRAGAN penalty drawing torch.rand_like in packs of 3)."""
    if torch.compiler.is_compiling():  # the compiled step draws nothing inside its graph (CompiledGAN.draws)
        return penalty(step)
    device = step.fake.device
    before = global_states(device)
    out = penalty(step)
    if not same_states(before, global_states(device)):
        raise ValueError(f"stabiliser {name}: its penalty drew from torch's global random generator (torch.rand_like, "
                         "torch.randn without generator=...), which makes a trial's rows depend on its pack; draw each "
                         "member's numbers from its own generator, step.family.gens[k] (as stabilisers.gp does)")
    return out

