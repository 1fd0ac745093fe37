"""The losses of every model family, as pure functions of tensors (logits, samples, anchors).

They take no modules and hold no state. Every tensor is member-major, (K, B, ...): K seeds
trained together (`vi_sweeps.gan.packing`), K = 1 for a single trial; every loss returns one value
per member, shape (K,), each the batch mean of that member alone. Logits are D's pre-sigmoid
outputs: log D = -softplus(-l), log(1 - D) = -softplus(l).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vi_sweeps.core.registry import Registry

Tensor = torch.Tensor


def log_d(logits: Tensor) -> Tensor:
    return -F.softplus(-logits)


def log_one_minus_d(logits: Tensor) -> Tensor:
    return -F.softplus(logits)


def batch_mean(x: Tensor) -> Tensor:
    """Mean over everything but the member dimension: (K, B, ...) -> (K,)."""
    return x.flatten(1).mean(1)


def bce_real_fake(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Mean of the real-labelled and fake-labelled BCE (the paper's D loss)."""
    return 0.5 * (-batch_mean(log_d(real_logits)) - batch_mean(log_one_minus_d(fake_logits)))


def proximity(x: Tensor, target: Tensor, reduction: str) -> Tensor:
    """||x - target||^2. mean: per-element mean over the whole batch tensor (author's code);
    sum: squared distance per sample, averaged over the batch."""
    sq = (x - target).pow(2)
    if reduction == "mean":
        return batch_mean(sq)
    return sq.flatten(2).sum(2).mean(1)


@dataclass(frozen=True)
class Adversarial:
    """One adversarial loss: `d(real, fake)` for the discriminator and `g(real, fake)` for the
    generator (and encoder), from D's logits on the two kinds of input, each (K,). GAN losses
    ignore `real` in g (the G step computes no D(x)); ALI's use both (encoder vs generator pairs)."""

    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor | None, Tensor], Tensor]
    doc: str


# registries, not dicts: a plugin adds a loss under a new name and cannot replace one (a plugin's
# `hinge` once replaced the built-in at a resume, under the same trial ids)
GAN_LOSSES = Registry("GAN loss", spec=Adversarial)
GAN_LOSSES.register("nonsaturating", spec=Adversarial(
    bce_real_fake, lambda real, fake: -batch_mean(log_d(fake)),
    "D: BCE; G: -log D(G(z)) (Goodfellow et al. 2014, the paper's)"))
GAN_LOSSES.register("minimax", spec=Adversarial(
    bce_real_fake, lambda real, fake: batch_mean(log_one_minus_d(fake)),
    "D: BCE; G: log(1 - D(G(z))), the saturating original"))
GAN_LOSSES.register("hinge", spec=Adversarial(
    lambda real, fake: batch_mean(F.relu(1 - real)) + batch_mean(F.relu(1 + fake)), lambda real, fake: -batch_mean(fake),
    "D: E relu(1 - D(x)) + E relu(1 + D(G(z))); G: -E D(G(z)) (Lim & Ye 2017; Miyato et al. 2018)"))
GAN_LOSSES.register("wasserstein", spec=Adversarial(
    lambda real, fake: batch_mean(fake) - batch_mean(real), lambda real, fake: -batch_mean(fake),
    "D: E D(G(z)) - E D(x); G: -E D(G(z)) (Arjovsky et al. 2017; with gp: Gulrajani et al. 2017)"))
GAN_LOSSES.register("least-squares", spec=Adversarial(
    lambda real, fake: 0.5 * batch_mean((real - 1).pow(2)) + 0.5 * batch_mean(fake.pow(2)),
    lambda real, fake: 0.5 * batch_mean((fake - 1).pow(2)),
    "D: (D(x) - 1)^2 / 2 + D(G(z))^2 / 2; G: (D(G(z)) - 1)^2 / 2 (Mao et al. 2017, a=0, b=c=1)"))


def gan_d_loss(real_logits: Tensor, fake_logits: Tensor, loss: str = "nonsaturating") -> Tensor:
    return GAN_LOSSES.meta(loss).d(real_logits, fake_logits)


def gan_g_loss(fake_logits: Tensor, fake: Tensor, anchor: Tensor, lam: float, reduction: str,
               loss: str = "nonsaturating") -> tuple[Tensor, Tensor, Tensor]:
    """The adversarial G loss plus lam * ||G(z) - anchor||^2 (the paper's anchor term); anchor
    carries no gradient. Returns (total, adversarial part, regulariser)."""
    adv = GAN_LOSSES.meta(loss).g(None, fake_logits)
    reg = proximity(fake, anchor.detach(), reduction)
    return adv + lam * reg, adv, reg


def gradient_norm_sq(logits: Tensor, inputs: Tensor) -> Tensor:
    """||d D(x) / d x||^2 per sample, (K, B), kept in the graph (for a penalty on D). Members
    never mix: the gradient of the summed logits w.r.t. member k's inputs is member k's."""
    (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return grad.flatten(2).pow(2).sum(2)


def r1_penalty(logits: Tensor, inputs: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018) without its gamma: E ||grad D(x)||^2 / 2 on real data (on
    generated data it is R2). For a linear D it is ||w||^2 / 2."""
    return 0.5 * gradient_norm_sq(logits, inputs).mean(1)


def gp_penalty(logits: Tensor, inputs: Tensor) -> Tensor:
    """WGAN-GP's (Gulrajani et al. 2017) without its lambda: E (||grad D(x_hat)|| - 1)^2 on
    interpolates. For a linear D it is (||w|| - 1)^2."""
    # + 1e-12: sqrt's derivative at 0 is infinite, and a frozen member's (or a stand-in's)
    # zeroed critic has gradient 0 there; 1e-12 moves a norm of order 1 by ~1e-13
    return ((gradient_norm_sq(logits, inputs) + 1e-12).sqrt() - 1).pow(2).mean(1)


def vae_loss(x: Tensor, x_mean: Tensor, x_logvar: Tensor, z_mu: Tensor, z_logvar: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """E_x[-log q(x|z) + KL(p(z|x) || N(0, I))], Gaussian q(x|z) with log-variance x_logvar,
    (K, *shape), shared by a member's batch. Returns (total, negative log-likelihood, KL),
    batch means."""
    x_logvar = x_logvar.unsqueeze(1)
    nll = 0.5 * ((x - x_mean).pow(2) / x_logvar.exp() + x_logvar + math.log(2 * math.pi))
    nll = nll.flatten(2).sum(2).mean(1)
    kl = 0.5 * (z_mu.pow(2) + z_logvar.exp() - 1.0 - z_logvar).sum(2).mean(1)
    return nll + kl, nll, kl


def aae_d_loss(enc_logits: Tensor, prior_logits: Tensor) -> Tensor:
    """D(z) is the probability that z came from the prior: prior codes real, encoded codes fake."""
    return bce_real_fake(prior_logits, enc_logits)


def aae_ge_loss(enc_logits: Tensor, x: Tensor, x_rec: Tensor, lam: float, reduction: str) -> tuple[Tensor, Tensor, Tensor]:
    """E_x[-log D(E(x)) + lam * ||x - G(E(x))||^2]. Returns (total, adversarial, reconstruction)."""
    adv = -batch_mean(log_d(enc_logits))
    rec = proximity(x_rec, x, reduction)
    return adv + lam * rec, adv, rec


def ali_d_loss(enc_logits: Tensor, gen_logits: Tensor) -> Tensor:
    """D(x, z) is the probability of an encoder pair (x, E(x)) against (G(z), z)."""
    return bce_real_fake(enc_logits, gen_logits)


# ALI's G and E losses: `real` are D's logits on encoder pairs (x, E(x)), `fake` on (G(z), z)
ALI_LOSSES = Registry("ALI loss", spec=Adversarial)
ALI_LOSSES.register("minimax", spec=Adversarial(
    bce_real_fake, lambda enc, gen: batch_mean(log_d(enc)) + batch_mean(log_one_minus_d(gen)),
    "E_enc log D + E_gen log(1 - D)"))
ALI_LOSSES.register("nonsaturating", spec=Adversarial(
    bce_real_fake, lambda enc, gen: -batch_mean(log_one_minus_d(enc)) - batch_mean(log_d(gen)),
    "-E_enc log(1 - D) - E_gen log D (the labels swapped)"))
ALI_LOSSES.register("vi", spec=Adversarial(
    bce_real_fake, lambda enc, gen: -batch_mean(log_d(enc)) - batch_mean(log_d(gen)),
    "-E_enc log D - E_gen log D (the paper's)"))


def ali_ge_loss(enc_logits: Tensor, gen_logits: Tensor, kind: str) -> Tensor:
    """The G and E loss of ALI_LOSSES[kind]."""
    return ALI_LOSSES.meta(kind).g(enc_logits, gen_logits)
