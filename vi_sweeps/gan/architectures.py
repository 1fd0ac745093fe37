"""Networks. Normalisation is a constructor argument (`bn`), not a subclass: with bn=False no
BatchNorm module exists anywhere.

- mlp: for the 2-D mixtures. Linear layers with ReLU (G) or LeakyReLU 0.2 (D, E); BN after
  every hidden layer of G and every hidden layer but the first of D and E. Biases are kept when
  BN is off (a bias-free ReLU MLP is positively homogeneous in z, a needless handicap).
- dcgan: the paper's DCGAN family sized by image_size (8/16/32/64 px): G is dense to 4x4, then
  5x5 stride-2 transposed convs halving channels, BN + ReLU, last to C channels + tanh. D and E
  are 5x5 stride-2 convs doubling channels from `width`, no BN on the first, BN + LeakyReLU 0.2,
  dense to the output. As in the paper's code, layers followed by BN carry no bias, and keep
  none when BN is removed. Weights N(0, 0.02), BN momentum 0.9 in TF terms (0.1 here), eps 1e-5.
- paper-64: dcgan at 64 px with width 64: G dense to 4x4x512, transposed convs to 256, 128, 64,
  then 3; D convs 64, 128, 256, 512, dense to one logit -- the paper's CelebA nets layer by layer.
- pacgan: PacGAN's 2-D networks (maxout D), for calibrating against its published table.
Each family is a Nets class, declared by name in vi_sweeps.gan.declared; `vi_sweeps.gan.packing` turns K of its networks into one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# the registry and the declarations of the built-in names, torch-free (their builders are the Nets classes here)
from vi_sweeps.gan.declared import ARCHITECTURES, DEFAULT_ARCH, ArchSpec  # noqa: F401 - their former home


def _norm1d(n: int, bn: bool) -> nn.Module:
    return nn.BatchNorm1d(n, momentum=0.1, eps=1e-5) if bn else nn.Identity()


def _norm2d(n: int, bn: bool) -> nn.Module:
    return nn.BatchNorm2d(n, momentum=0.1, eps=1e-5) if bn else nn.Identity()


def mlp_generator(z_dim: int, out_dim: int, hidden: int, layers: int, bn: bool) -> nn.Module:
    mods: list[nn.Module] = []
    width = z_dim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), _norm1d(hidden, bn), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, out_dim))
    return nn.Sequential(*mods)


def mlp_critic(in_dim: int, out_dim: int, hidden: int, layers: int, bn: bool) -> nn.Module:
    mods: list[nn.Module] = [nn.Linear(in_dim, hidden), nn.LeakyReLU(0.2)]
    for _ in range(layers - 1):
        mods += [nn.Linear(hidden, hidden), _norm1d(hidden, bn), nn.LeakyReLU(0.2)]
    mods.append(nn.Linear(hidden, out_dim))
    return nn.Sequential(*mods)


class Reshape(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape)


def _depth(image_size: int) -> int:
    depth = int(math.log2(image_size // 4))
    if 4 * 2**depth != image_size or depth < 1:
        raise ValueError(f"image_size must be 8, 16, 32 or 64, not {image_size}")
    return depth


def init_normal(net: nn.Module, std: float = 0.02) -> nn.Module:
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def dcgan_generator(z_dim: int, channels: int, image_size: int, width: int, bn: bool) -> nn.Module:
    depth = _depth(image_size)
    ch = width * 2 ** (depth - 1)
    mods: list[nn.Module] = [nn.Linear(z_dim, ch * 16, bias=False), Reshape(ch, 4, 4), _norm2d(ch, bn), nn.ReLU()]
    for _ in range(depth - 1):
        mods += [nn.ConvTranspose2d(ch, ch // 2, 5, 2, 2, output_padding=1, bias=False), _norm2d(ch // 2, bn), nn.ReLU()]
        ch //= 2
    mods += [nn.ConvTranspose2d(ch, channels, 5, 2, 2, output_padding=1), nn.Tanh()]
    return init_normal(nn.Sequential(*mods))


def dcgan_trunk(channels: int, image_size: int, width: int, bn: bool) -> tuple[nn.Module, int]:
    """The conv body shared by D and E; returns it and its flattened output size."""
    depth = _depth(image_size)
    mods: list[nn.Module] = [nn.Conv2d(channels, width, 5, 2, 2), nn.LeakyReLU(0.2)]
    ch = width
    for _ in range(depth - 1):
        mods += [nn.Conv2d(ch, ch * 2, 5, 2, 2, bias=False), _norm2d(ch * 2, bn), nn.LeakyReLU(0.2)]
        ch *= 2
    mods.append(nn.Flatten())
    return nn.Sequential(*mods), ch * 16


def dcgan_critic(channels: int, image_size: int, width: int, bn: bool, out_dim: int) -> nn.Module:
    trunk, feats = dcgan_trunk(channels, image_size, width, bn)
    return init_normal(nn.Sequential(trunk, nn.Linear(feats, out_dim)))


class DataParameter(nn.Module):
    """A free parameter of the data's shape (the VAE decoder's per-pixel log-variance)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.value = nn.Parameter(torch.zeros(shape))

    def forward(self) -> torch.Tensor:
        return self.value


class JointCritic(nn.Module):
    """D(x, z) for ALI: features of x and of z, concatenated, to one logit."""

    def __init__(self, x_body: nn.Module, x_feats: int, z_dim: int, hidden: int):
        super().__init__()
        self.x_body = x_body
        self.z_body = nn.Sequential(nn.Linear(z_dim, hidden), nn.LeakyReLU(0.2))
        self.head = nn.Sequential(nn.Linear(x_feats + hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.x_body(x), self.z_body(z)], 1))


class Maxout(nn.Module):
    """The max over `pieces` consecutive features: LinearMaxout's second half (PacGAN's D)."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.pieces).amax(-1)


class SpectralNorm(nn.Module):
    """A Linear or Conv2d layer whose weight is divided by its largest singular value (Miyato
    et al. 2018), estimated by one power iteration per forward in training mode, u and v kept
    as buffers (as torch.nn.utils.spectral_norm, but a module of its own, which packing
    stacks per member: torch's version is a forward hook pack() cannot carry)."""

    def __init__(self, layer: nn.Linear | nn.Conv2d, eps: float = 1e-12):
        super().__init__()
        self.layer, self.eps = layer, eps
        rows, cols = layer.weight.shape[0], layer.weight[0].numel()
        self.register_buffer("u", nn.functional.normalize(torch.randn(rows), dim=0, eps=eps))
        self.register_buffer("v", nn.functional.normalize(torch.randn(cols), dim=0, eps=eps))

    def normalised_weight(self) -> torch.Tensor:
        w = self.layer.weight
        mat = w.flatten(1)
        if self.training:
            with torch.no_grad():
                self.v.copy_(nn.functional.normalize(mat.t() @ self.u, dim=0, eps=self.eps))
                self.u.copy_(nn.functional.normalize(mat @ self.v, dim=0, eps=self.eps))
        # copies: the next forward (D on fake after D on real) updates u and v in place
        sigma = self.u.clone() @ (mat @ self.v.clone())
        return w / sigma.clamp_min(self.eps)  # a frozen member's zero weight stays 0, not 0/0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, m = self.normalised_weight(), self.layer
        if isinstance(m, nn.Linear):
            return nn.functional.linear(x, w, m.bias)
        return nn.functional.conv2d(x, w, m.bias, m.stride, m.padding, m.dilation, m.groups)


def spectral_normed(net: nn.Module) -> nn.Module:
    """`net` with every Linear and Conv2d wrapped in SpectralNorm (D with sn: true)."""
    for name, child in net.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            setattr(net, name, SpectralNorm(child))
        else:
            spectral_normed(child)
    return net


class Nets:
    """Builds the networks a model family asks for: G, D (or an encoder), D on z, D on (x, z)."""

    def __init__(self, cfg, shape: tuple[int, ...]):
        self.cfg, self.shape = cfg, shape

    def generator(self) -> nn.Module:
        raise NotImplementedError

    def critic(self, out_dim: int = 1, sn: bool = False) -> nn.Module:
        """D on x (out_dim 1) or an encoder E(x) (out_dim z_dim, or 2 z_dim for a VAE); `sn`:
        every layer spectrally normalised, in every architecture (a constructor argument, as bn)."""
        net = self.critic_net(out_dim)
        return spectral_normed(net) if sn else net

    def critic_net(self, out_dim: int) -> nn.Module:
        raise NotImplementedError

    def latent_critic(self) -> nn.Module:
        c = self.cfg
        return mlp_critic(c.z_dim, 1, c.hidden, c.mlp_layers, c.bn)

    def joint_critic(self) -> nn.Module:
        c = self.cfg
        body = mlp_critic(self.shape[0], c.hidden, c.hidden, c.mlp_layers, c.bn)
        return JointCritic(body, c.hidden, c.z_dim, c.hidden)


class MLPNets(Nets):
    def generator(self) -> nn.Module:
        c = self.cfg
        return mlp_generator(c.z_dim, self.shape[0], c.hidden, c.mlp_layers, c.bn)

    def critic_net(self, out_dim: int) -> nn.Module:
        c = self.cfg
        return mlp_critic(self.shape[0], out_dim, c.hidden, c.mlp_layers, c.bn)


class PacGANNets(MLPNets):
    """PacGAN's 2-D GAN (fjxmlzn/PacGAN, synthetic_data_experiments): G has 4 hidden layers of
    400 units, BN + ReLU, no bias (the output layer keeps one); D has 3 maxout layers of 200
    units and 5 pieces and a linear output. Weights N(0, 0.02), biases 0; BN population
    statistics updated with weight 0.05. `hidden` and `mlp_layers` do not apply."""

    G_HIDDEN, G_LAYERS, D_HIDDEN, D_LAYERS, PIECES = 400, 4, 200, 3, 5

    def generator(self) -> nn.Module:
        mods: list[nn.Module] = []
        width = self.cfg.z_dim
        for _ in range(self.G_LAYERS):
            norm = nn.BatchNorm1d(self.G_HIDDEN, momentum=0.05) if self.cfg.bn else nn.Identity()
            mods += [nn.Linear(width, self.G_HIDDEN, bias=False), norm, nn.ReLU()]
            width = self.G_HIDDEN
        mods.append(nn.Linear(width, self.shape[0]))
        return init_normal(nn.Sequential(*mods))

    def critic_net(self, out_dim: int) -> nn.Module:
        mods: list[nn.Module] = []
        width = self.shape[0]
        for _ in range(self.D_LAYERS):
            mods += [nn.Linear(width, self.D_HIDDEN * self.PIECES), Maxout(self.PIECES)]
            width = self.D_HIDDEN
        mods.append(nn.Linear(width, out_dim))
        return init_normal(nn.Sequential(*mods))


class DCGANNets(Nets):
    def width(self) -> int:
        return self.cfg.width

    def generator(self) -> nn.Module:
        c = self.cfg
        return dcgan_generator(c.z_dim, self.shape[0], c.image_size, self.width(), c.bn)

    def critic_net(self, out_dim: int) -> nn.Module:
        c = self.cfg
        return dcgan_critic(self.shape[0], c.image_size, self.width(), c.bn, out_dim)

    def joint_critic(self) -> nn.Module:
        c = self.cfg
        body, feats = dcgan_trunk(self.shape[0], c.image_size, self.width(), c.bn)
        return init_normal(JointCritic(body, feats, c.z_dim, 4 * c.hidden))


class Paper64Nets(DCGANNets):
    def width(self) -> int:
        return 64


def build_nets(cfg, shape: tuple[int, ...]) -> Nets:
    return ARCHITECTURES.get(cfg.resolved_arch)(cfg, shape)
