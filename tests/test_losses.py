"""Every loss at tiny inputs, against values computed by hand. Tensors are member-major,
(K, B, ...), and every loss returns one value per member."""

import math

import pytest
import torch

from vi_sweeps.gan import losses

LN2 = math.log(2.0)


def sp(x):
    return math.log1p(math.exp(x))


def m(*rows):
    """One member's batch as a (1, B, ...) tensor."""
    return torch.tensor([list(rows)], dtype=torch.float32)


def test_gan_d_loss_at_zero_logits_is_log2():
    out = losses.gan_d_loss(torch.zeros(1, 4, 1), torch.zeros(1, 4, 1))
    assert out.shape == (1,) and out.item() == pytest.approx(LN2)


def test_gan_d_loss_is_mean_of_real_and_fake_bce():
    real, fake = m([2.0]), m([-1.0])
    # -log sigmoid(2) = softplus(-2); -log(1 - sigmoid(-1)) = softplus(-1)
    expected = 0.5 * (sp(-2.0) + sp(-1.0))
    assert losses.gan_d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_gan_g_loss_non_saturating_plus_mean_penalty():
    logits = m([0.0], [1.0])
    fake = m([1.0, 2.0], [3.0, 4.0])
    anchor = m([0.0, 2.0], [3.0, 2.0])
    total, adv, reg = losses.gan_g_loss(logits, fake, anchor, lam=5.0, reduction="mean")
    assert adv.item() == pytest.approx(0.5 * (sp(0.0) + sp(-1.0)), rel=1e-6)
    assert reg.item() == pytest.approx((1 + 0 + 0 + 4) / 4)  # per-element mean
    assert total.item() == pytest.approx(adv.item() + 5.0 * 1.25, rel=1e-6)


def test_penalty_sum_is_per_sample_squared_distance():
    fake = m([1.0, 2.0], [3.0, 4.0])
    anchor = m([0.0, 2.0], [3.0, 2.0])
    assert losses.proximity(fake, anchor, "sum").item() == pytest.approx((1 + 4) / 2)


def test_each_member_gets_its_own_value():
    # two members: the second's batch is the first's shifted, so its penalty is known
    fake = torch.tensor([[[1.0, 2.0]], [[4.0, 6.0]]])
    anchor = torch.zeros(2, 1, 2)
    assert losses.proximity(fake, anchor, "sum").tolist() == [5.0, 52.0]
    assert losses.proximity(fake, anchor, "mean").tolist() == [2.5, 26.0]
    logits = torch.tensor([[[0.0]], [[50.0]]])
    d = losses.gan_d_loss(logits, logits)
    assert d[0].item() == pytest.approx(LN2) and d[1].item() == pytest.approx(0.5 * (sp(-50.0) + sp(50.0)), rel=1e-6)


def test_vae_loss_closed_form():
    x = m([1.0, 0.0])
    x_mean = m([0.0, 0.0])
    x_logvar = torch.zeros(1, 2)
    mu, logvar = m([1.0]), m([0.0])
    total, nll, kl = losses.vae_loss(x, x_mean, x_logvar, mu, logvar)
    assert nll.item() == pytest.approx(0.5 * 1 + math.log(2 * math.pi), rel=1e-6)
    assert kl.item() == pytest.approx(0.5)  # 0.5 * (1 + 1 - 1 - 0)
    assert total.item() == pytest.approx(nll.item() + 0.5, rel=1e-6)


def test_aae_losses():
    enc, prior = m([1.0]), m([2.0])
    # D: prior codes are "real", encoded codes "fake"
    assert losses.aae_d_loss(enc, prior).item() == pytest.approx(0.5 * (sp(-2.0) + sp(1.0)), rel=1e-6)
    x, x_rec = m([1.0, 1.0]), m([0.0, 1.0])
    total, adv, rec = losses.aae_ge_loss(enc, x, x_rec, lam=2.0, reduction="sum")
    assert adv.item() == pytest.approx(sp(-1.0), rel=1e-6)
    assert rec.item() == pytest.approx(1.0)
    assert total.item() == pytest.approx(sp(-1.0) + 2.0, rel=1e-6)


@pytest.mark.parametrize("kind, expected", [
    ("minimax", -sp(-1.0) - sp(-2.0)),        # E_enc log D + E_gen log(1 - D)
    ("nonsaturating", sp(1.0) + sp(2.0)),      # -E_enc log(1 - D) - E_gen log D
    ("vi", sp(-1.0) + sp(2.0)),                # -E_enc log D - E_gen log D
])
def test_ali_generator_losses(kind, expected):
    enc, gen = m([1.0]), m([-2.0])
    assert losses.ali_ge_loss(enc, gen, kind).item() == pytest.approx(expected, rel=1e-6)


def test_ali_unknown_loss_lists_choices():
    with pytest.raises(KeyError, match="minimax, nonsaturating, vi"):
        losses.ali_ge_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), "wgan")
