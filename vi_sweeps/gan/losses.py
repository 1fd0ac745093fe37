"""The losses of every model family, as pure functions of tensors (logits, samples, anchors).

They take no modules and hold no state. Every tensor is member-major, (K, B, ...): K seeds
trained together (`vi_sweeps.gan.packing`), K = 1 for a single trial; every loss returns one value
per member, shape (K,), each the batch mean of that member alone. Logits are D's pre-sigmoid
outputs: log D = -softplus(-l), log(1 - D) = -softplus(l). The adversarial losses are
registered by name in `GAN_LOSSES` and `ALI_LOSSES` (declared in vi_sweeps.gan.declared).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# the registries and the declarations of the built-in losses (their functions are the ones below)
from vi_sweeps.gan.declared import ALI_LOSSES, GAN_LOSSES, Adversarial  # noqa: F401 - their former home

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


def nonsaturating_g(real: Tensor | None, fake: Tensor) -> Tensor:
    return -batch_mean(log_d(fake))


def minimax_g(real: Tensor | None, fake: Tensor) -> Tensor:
    return batch_mean(log_one_minus_d(fake))


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return batch_mean(F.relu(1 - real)) + batch_mean(F.relu(1 + fake))


def critic_g(real: Tensor | None, fake: Tensor) -> Tensor:
    """-E D(G(z)): the hinge and Wasserstein losses' G."""
    return -batch_mean(fake)


def wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    return batch_mean(fake) - batch_mean(real)


def least_squares_d(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * batch_mean((real - 1).pow(2)) + 0.5 * batch_mean(fake.pow(2))


def least_squares_g(real: Tensor | None, fake: Tensor) -> Tensor:
    return 0.5 * batch_mean((fake - 1).pow(2))


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


# ALI's G and E losses: `enc` are D's logits on encoder pairs (x, E(x)), `gen` on (G(z), z)
def ali_minimax_g(enc: Tensor, gen: Tensor) -> Tensor:
    return batch_mean(log_d(enc)) + batch_mean(log_one_minus_d(gen))


def ali_nonsaturating_g(enc: Tensor, gen: Tensor) -> Tensor:
    return -batch_mean(log_one_minus_d(enc)) - batch_mean(log_d(gen))


def ali_vi_g(enc: Tensor, gen: Tensor) -> Tensor:
    return -batch_mean(log_d(enc)) - batch_mean(log_d(gen))


def ali_ge_loss(enc_logits: Tensor, gen_logits: Tensor, kind: str) -> Tensor:
    """The G and E loss of ALI_LOSSES[kind]."""
    return ALI_LOSSES.meta(kind).g(enc_logits, gen_logits)
