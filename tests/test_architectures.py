import pytest
import torch
from torch import nn

from tests.conftest import tiny
from vi_sweeps.gan.architectures import ARCHITECTURES, build_nets

CASES = {"mlp": dict(dataset="ring8"), "pacgan": dict(dataset="ring8", z_dim=2),
         "dcgan": dict(dataset="digits", image_size=16),
         "paper-64": dict(dataset="image-folder", image_size=64, data_root="/nowhere")}
SHAPES = {"mlp": (2,), "pacgan": (2,), "dcgan": (1, 16, 16), "paper-64": (3, 64, 64)}


def nets(arch, bn):
    cfg = tiny(arch=arch, bn=bn, **CASES[arch])
    return cfg, build_nets(cfg, SHAPES[arch]), SHAPES[arch]


def has_bn(module):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def test_every_registered_architecture_has_a_case():
    assert sorted(CASES) == ARCHITECTURES.names()


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
@pytest.mark.parametrize("bn", [True, False])
def test_every_network_builds_with_and_without_bn(arch, bn):
    cfg, n, shape = nets(arch, bn)
    built = [n.generator(), n.critic(), n.critic(cfg.z_dim), n.latent_critic(), n.joint_critic()]
    assert has_bn(built[0]) == bn
    assert not any(has_bn(m) for m in built) or bn
    z = torch.randn(3, cfg.z_dim)
    x = built[0](z)
    assert x.shape == (3, *shape)
    assert built[1](x).shape == (3, 1)
    assert built[2](x).shape == (3, cfg.z_dim)
    assert built[4](x, z).shape == (3, 1)


def test_paper_64_matches_the_paper_layer_for_layer():
    _, n, _ = nets("paper-64", True)
    G, D = n.generator(), n.critic()
    assert G[0].out_features == 4 * 4 * 512
    assert [m.out_channels for m in G if isinstance(m, nn.ConvTranspose2d)] == [256, 128, 64, 3]
    assert all(m.kernel_size == (5, 5) and m.stride == (2, 2) for m in G if isinstance(m, nn.ConvTranspose2d))
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512]
    bns = [m for m in D.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 3  # none after the first conv
    assert all(m.momentum == pytest.approx(0.1) and m.eps == 1e-5 for m in bns)
    assert isinstance(G[-1], nn.Tanh)


def test_pacgan_matches_its_published_networks():
    _, n, _ = nets("pacgan", True)
    G, D = n.generator(), n.critic()
    linears = [m for m in G if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [400, 400, 400, 400, 2]
    assert [m.bias is None for m in linears] == [True, True, True, True, False]
    assert all(m.momentum == pytest.approx(0.05) for m in G if isinstance(m, nn.BatchNorm1d))
    d_linears = [m for m in D if isinstance(m, nn.Linear)]
    assert [m.out_features for m in d_linears] == [1000, 1000, 1000, 1]  # 200 units x 5 maxout pieces
    x = torch.randn(7, 2)
    h = D[1](D[0](x))
    assert h.shape == (7, 200) and torch.equal(h, D[0](x).view(7, 200, 5).amax(-1))
    assert not has_bn(D)


def test_bn_off_layers_keep_no_bias_in_dcgan():
    _, n, _ = nets("dcgan", False)
    G = n.generator()
    convs = [m for m in G if isinstance(m, nn.ConvTranspose2d)]
    assert all(m.bias is None for m in convs[:-1]) and convs[-1].bias is not None
