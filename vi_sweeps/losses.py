"""The losses of every model family, as pure functions of tensors (logits, samples, anchors).

They take no modules and hold no state. Every tensor is member-major, (K, B, ...): K seeds
trained together (`vi_sweeps.packing`), K = 1 for a single trial; every loss returns one value
per member, shape (K,), each the batch mean of that member alone. Logits are D's pre-sigmoid
outputs: log D = -softplus(-l), log(1 - D) = -softplus(l).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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


def gan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return bce_real_fake(real_logits, fake_logits)


def gan_g_loss(fake_logits: Tensor, fake: Tensor, anchor: Tensor, lam: float, reduction: str) -> tuple[Tensor, Tensor, Tensor]:
    """Non-saturating -log D(G(z)) plus lam * ||G(z) - anchor||^2; anchor carries no gradient.
    Returns (total, adversarial part, regulariser)."""
    adv = -batch_mean(log_d(fake_logits))
    reg = proximity(fake, anchor.detach(), reduction)
    return adv + lam * reg, adv, reg


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


ALI_LOSSES = ("minimax", "nonsaturating", "vi")


def ali_ge_loss(enc_logits: Tensor, gen_logits: Tensor, kind: str) -> Tensor:
    """The G and E loss. minimax: E_enc log D + E_gen log(1 - D); nonsaturating (swapped):
    -E_enc log(1 - D) - E_gen log D; vi (the paper's): -E_enc log D - E_gen log D."""
    if kind == "minimax":
        return batch_mean(log_d(enc_logits)) + batch_mean(log_one_minus_d(gen_logits))
    if kind == "nonsaturating":
        return -batch_mean(log_one_minus_d(enc_logits)) - batch_mean(log_d(gen_logits))
    if kind == "vi":
        return -batch_mean(log_d(enc_logits)) - batch_mean(log_d(gen_logits))
    raise ValueError(f"ali_loss: unknown {kind!r}; valid choices: {', '.join(ALI_LOSSES)}")
