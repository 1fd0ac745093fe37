"""The regulariser's anchor semantics, as in the author's code."""

import pytest
import torch

from tests.conftest import tiny
from vi_sweeps.data.datasets import build_dataset
from vi_sweeps.gan import losses
from vi_sweeps.gan.families import GAN


def make_gan(**overrides):
    cfg = tiny(lam=5.0, **overrides)
    return GAN([cfg], build_dataset(cfg), torch.device("cpu"), [torch.Generator().manual_seed(0)])


def penalty_grads(G, z, anchor):
    G.zero_grad()
    reg = losses.proximity(G(z), anchor, "mean")
    reg.sum().backward()
    return reg.item(), [p.grad.clone() for p in G.parameters() if p.grad is not None]


@pytest.mark.parametrize("bn", [True, False])
def test_penalty_gradient_is_zero_on_first_repeat(bn):
    gan = make_gan(bn=bn)
    G = gan.modules["G"]
    z = gan.noise(16)
    with torch.no_grad():
        anchor = G(z)
    value, grads = penalty_grads(G, z, anchor)
    assert value == 0.0
    assert all(torch.count_nonzero(g) == 0 for g in grads)


def test_second_repeat_is_pulled_towards_the_anchor():
    gan = make_gan(bn=False)
    G = gan.modules["G"]
    z = gan.noise(16)
    with torch.no_grad():
        anchor = G(z)
    # First repeat: an adversarial update moves G away from the anchor.
    fake = G(z)
    loss, _, reg = losses.gan_g_loss(gan.modules["D"](fake), fake, anchor, 5.0, "mean")
    assert reg.item() == 0.0
    gan.step("G", loss)
    before, grads = penalty_grads(G, z, anchor)
    assert before > 0 and any(torch.count_nonzero(g) > 0 for g in grads)
    # A small gradient step on the penalty alone brings G(z) back towards the fixed anchor.
    with torch.no_grad():
        for p in G.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    after = losses.proximity(G(z), anchor, "mean").item()
    assert after < before


def test_one_chunk_one_repeat_never_feels_the_regulariser():
    gan = make_gan(g_steps=1, g_repeats=1)
    assert gan.train_iteration()["loss/reg"].item() == 0.0


def test_anchors_are_fixed_at_the_start_of_the_g_phase():
    # With 2 chunks and 1 repeat each, the second chunk's anchor was computed before the first
    # chunk's update, so its penalty is already non-zero on its only update.
    gan = make_gan(g_steps=2, g_repeats=1)
    assert gan.train_iteration()["loss/reg"].item() > 0.0


def test_g_repeats_two_feels_the_regulariser():
    gan = make_gan(g_steps=1, g_repeats=2)
    assert gan.train_iteration()["loss/reg"].item() > 0.0


def test_the_discriminator_is_not_updated_by_the_generator_phase():
    gan = make_gan(g_steps=1, g_repeats=2)
    before = [p.detach().clone() for p in gan.modules["D"].parameters()]
    G, D = gan.modules["G"], gan.modules["D"]
    z = gan.noise(16)
    from vi_sweeps.gan.families import frozen

    with frozen(D):
        fake = G(z)
        loss, _, _ = losses.gan_g_loss(D(fake), fake, fake.detach(), 5.0, "mean")
        gan.step("G", loss)
    assert all(p.grad is None for p in D.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, D.parameters(), strict=True))
    assert all(p.requires_grad for p in D.parameters())
